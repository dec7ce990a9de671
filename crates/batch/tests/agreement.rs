//! The checker and DataFusion agree on every batch query in the examples and the checker's test data: each query
//! goes through `stratum check` and through DataFusion's planner (its tables registered, empty, with the schemas
//! the checker gives them; a result without a column of the dataset it fills is refused, as a run refuses it), and
//! both accept it or both refuse it.

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stratum_core::ir::SinkKind;
use stratum_lang::Code;

/// The `.stratum` files of the checker's test data and of every example.
fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut folders = vec![root.join("crates/lang/test_data/ok"), root.join("crates/lang/test_data/err")];
    folders.extend(std::fs::read_dir(root.join("examples")).unwrap().map(|entry| entry.unwrap().path()));
    let mut files: Vec<PathBuf> = folders
        .iter()
        .flat_map(|folder| std::fs::read_dir(folder).into_iter().flatten())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "stratum"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn the_checker_and_datafusion_accept_and_refuse_the_same_queries() {
    let mut compared = 0;
    let mut disagreements = Vec::new();
    for path in files() {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.to_string_lossy().into_owned();
        let checked = stratum_lang::check(&name, &bytes, &stratum_test_support::DiskLoader);
        let application = &checked.application;
        if application.batches.is_empty() {
            continue;
        }
        // The tables DataFusion is given: every dataset and every file sink, as `stratum run-batch` registers them.
        let context = SessionContext::new();
        let datasets = application.datasets.iter().map(|dataset| (&dataset.name, &dataset.fields));
        let sinks = application
            .sinks
            .iter()
            .filter(|sink| matches!(sink.kind, SinkKind::File { .. }))
            .map(|sink| (&sink.name, &sink.fields));
        for (table, fields) in datasets.chain(sinks) {
            let schema = stratum_ml::columnar::arrow_schema(fields);
            let empty = MemTable::try_new(schema, vec![vec![]]).unwrap();
            context.register_table(table.as_str(), Arc::new(empty)).unwrap();
        }
        for batch in &application.batches {
            let Some(query_span) = checked.spans.attribute(&batch.name, "query") else { continue };
            let refused_by_checker = checked.diagnostics.iter().any(|diagnostic| {
                matches!(diagnostic.code, Code::QueryError | Code::UnknownName | Code::WrongKindOfName)
                    && diagnostic.span.file == query_span.file
                    && diagnostic.span.start >= query_span.start
                    && diagnostic.span.end <= query_span.end
            });
            // Planned, and — as a run then conforms the result to the dataset it fills — with every column of it.
            let planned = match context.sql(&batch.query).await {
                Ok(frame) => {
                    let columns: Vec<&String> = frame.schema().fields().iter().map(|field| field.name()).collect();
                    let into = application.datasets.iter().find(|dataset| dataset.name == batch.into);
                    match into
                        .into_iter()
                        .flat_map(|dataset| &dataset.fields)
                        .find(|field| !columns.contains(&&field.name))
                    {
                        Some(field) => Err(format!("its result has no column `{}`", field.name)),
                        None => Ok(()),
                    }
                }
                // Only shown, in a disagreement.
                Err(error) => Err(error.to_string()),
            };
            compared += 1;
            if refused_by_checker == planned.is_ok() {
                let datafusion = match &planned {
                    Ok(()) => "plans it".to_string(),
                    Err(error) => format!("refuses it: {error}"),
                };
                let checker = if refused_by_checker { "refuses it" } else { "accepts it" };
                disagreements.push(format!(
                    "{} batch `{}`: the checker {checker}, DataFusion {datafusion}\n{}",
                    path.display(),
                    batch.name,
                    batch.query
                ));
            }
        }
    }
    assert!(compared >= 8, "expected the test data's and the examples' queries, compared {compared}");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}
