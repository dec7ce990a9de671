//! Whole-application dataflow checks that need every item lowered: sources nothing reads, streams whose
//! output goes nowhere, datasets that nothing fills (no path, no batch and no sink writes into them).

use super::{Checker, ItemKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use stratum_core::ir::{Application, SinkKind};

impl<'a> Checker<'a> {
    pub(super) fn flow_checks(&mut self, application: &Application) {
        for id in 0..self.items.len() {
            let item = &self.items[id];
            let referenced = self.referenced.contains(&id);
            let diagnostic = match item.kind {
                ItemKind::Source if !referenced => Some(
                    Diagnostic::new(
                        Code::UnusedSource,
                        item.name_span,
                        format!("source `{}` is never read", item.name),
                    )
                    .label("nothing reads this")
                    .help("read it from a stream (`from = …`), a sink or a service, or remove it"),
                ),
                ItemKind::Stream if !referenced => Some(
                    Diagnostic::new(
                        Code::UnusedStream,
                        item.name_span,
                        format!("the output of stream `{}` goes nowhere", item.name),
                    )
                    .label("nothing reads this")
                    .help("send it to a sink, a service or a dashboard panel, or remove it"),
                ),
                ItemKind::Dataset => {
                    let has_path =
                        application.datasets.iter().any(|dataset| dataset.name == item.name && dataset.path.is_some());
                    let written = application.batches.iter().any(|batch| batch.into == item.name)
                        || application
                            .sinks
                            .iter()
                            .any(|sink| matches!(&sink.kind, SinkKind::Dataset { into } if *into == item.name));
                    (!has_path && !written).then(|| {
                        Diagnostic::new(
                            Code::DatasetWithoutData,
                            item.name_span,
                            format!("dataset `{}` has no data", item.name),
                        )
                        .label("no `path`, and no batch writes into it")
                        .help("add `path = \"data/….parquet\"`, or a batch with `into = …`")
                    })
                }
                _ => None,
            };
            if let Some(diagnostic) = diagnostic {
                self.report(diagnostic);
            }
        }
    }
}
