//! Units, data types and the versioned intermediate representation (IR) shared by every Stratum crate.
//!
//! This crate does no IO and has no async code: it is the vocabulary the language front end produces and the
//! planner, ML engine, data plane and control plane consume.

#![warn(missing_docs)]

pub mod autoscale;
pub mod bytes;
pub mod clock;
pub mod cron;
pub mod eval;
pub mod events;
pub mod ir;
pub mod placement;
pub mod plan;
pub mod sql;
pub mod sync;
pub mod types;
pub mod units;
mod version;
pub mod vocabulary;

pub use ir::IR_VERSION;

/// What caused an error: another library's error, kept as the error's `source` so that the chain survives, or a
/// sentence of ours where there is none (`"…".into()`).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An error and its causes as one line for people (`outer: cause: root cause`), where an error becomes a message:
/// an event, an HTTP refusal, an agent's problem, a leaderboard's reason. Many errors say their cause in their own
/// message and keep it as their source too, so a cause whose words are already in the line is not said twice.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    // Each link's own words, then its cause's: this is the one place an error's text is taken alone.
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // As above, link by link.
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start `{component}`")]
    struct Outer {
        component: String,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the model: {source}")]
    struct SaysItsCause {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn every_cause_is_said_once() {
        let root = || std::io::Error::new(std::io::ErrorKind::NotFound, "model.onnx is missing");
        let outer = Outer { component: "speed".into(), source: root() };
        assert_eq!(error_chain(&outer), "cannot start `speed`: model.onnx is missing");
        let says = SaysItsCause { source: root() };
        assert_eq!(error_chain(&says), "cannot read the model: model.onnx is missing");
    }
}
