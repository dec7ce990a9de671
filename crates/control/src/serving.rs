//! Inference over HTTP: `POST /v1/services/{name}/predict` with one JSON object (answered with `prediction`) or an
//! array of them (answered with `predictions`, in order). Requests are decoded against the model's inputs and
//! predicted by the same entry point the data plane's `predict()` uses; every request is counted and timed in the
//! service's standard metrics (`NAME-http`), which `/metrics` shows as a latency histogram.

use crate::Error;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;
use stratum_core::ir::Application;
use stratum_core::types::Field;
use stratum_dataplane::component::{BuildContext, Context, DeadLetters};
use stratum_dataplane::metrics::Registry;
use stratum_dataplane::record::{Record, datum_to_json, from_json_object};
use stratum_dataplane::stream::predict::Predictor;

pub struct ServiceEndpoint {
    pub name: String,
    pub model: String,
    predictor: Predictor,
    /// The layout of a request's records: the model's inputs.
    inputs: Vec<Field>,
    context: Context,
}

/// Why a request was not answered with predictions: an HTTP status and a message for the caller.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl ServiceEndpoint {
    /// Loads the model behind `service` from the store and registers the service's request metrics.
    pub fn load(
        application: &Application,
        service: &str,
        model_store: &Path,
        metrics: &Registry,
    ) -> Result<ServiceEndpoint, Error> {
        let failed = |message: String| Error::Service { service: service.into(), message };
        let item = application
            .services
            .iter()
            .find(|item| item.name == service)
            .ok_or_else(|| failed("no such service".into()))?;
        let model = application
            .models
            .iter()
            .find(|model| model.name == item.model)
            .ok_or_else(|| failed(format!("no model `{}`", item.model)))?;
        let build = BuildContext {
            application,
            base_dir: Path::new("."),
            fast_generators: false,
            generator_limit: None,
            simulated_seconds: None,
            time_scale: 1.0,
            model_store: Some(model_store),
            mqtt_broker: None,
        };
        let component = format!("{service}-http");
        let predictor = Predictor::load(service, &component, &model.inputs, &build).map_err(failed)?;
        let context = Context {
            component: component.clone(),
            metrics: metrics.register(&component, "inference-http"),
            shutdown: tokio::sync::watch::channel(false).1,
            dead_letters: DeadLetters::default(),
        };
        Ok(ServiceEndpoint {
            name: service.into(),
            model: model.name.clone(),
            predictor,
            inputs: model.inputs.clone(),
            context,
        })
    }

    /// Answers one request body.
    pub fn predict(&self, body: &[u8]) -> Result<Value, Refusal> {
        let started = Instant::now();
        let metrics = &self.context.metrics;
        let refuse = |message: String| {
            metrics.count_error();
            Refusal { status: 400, message }
        };
        let (records, single) = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => (vec![self.decode(&object).map_err(refuse)?], true),
            Ok(Value::Array(items)) => {
                let records = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| match item {
                        Value::Object(object) => {
                            self.decode(object).map_err(|reason| format!("item {index}: {reason}"))
                        }
                        _ => Err(format!("item {index}: expected a JSON object")),
                    })
                    .collect::<Result<Vec<Record>, String>>()
                    .map_err(refuse)?;
                (records, false)
            }
            Ok(_) => return Err(refuse("expected a JSON object or an array of objects".into())),
            Err(error) => return Err(refuse(format!("not JSON: {error}"))),
        };
        metrics.count_in(records.len(), body.len());
        let predictions: Vec<Value> =
            self.predictor.predict(&records, &self.context).iter().map(datum_to_json).collect();
        metrics.count_out(predictions.len(), 0);
        metrics.observe_latency(started.elapsed());
        Ok(if single {
            json!({ "prediction": predictions.into_iter().next().unwrap_or(Value::Null) })
        } else {
            json!({ "predictions": predictions })
        })
    }

    fn decode(&self, object: &serde_json::Map<String, Value>) -> Result<Record, String> {
        from_json_object(object, &self.inputs).map_err(|reason| {
            let names: Vec<String> =
                self.inputs.iter().map(|field| format!("{}: {}", field.name, field.data_type)).collect();
            format!("{reason} (model `{}` takes {})", self.model, names.join(", "))
        })
    }
}
