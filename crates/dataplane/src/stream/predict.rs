//! `predict(service)` in a stream and the stream part of a service: the service's model, loaded from the model
//! store, called through the ML crate's inference entry points once per batch.

use crate::Error;
use crate::component::{BuildContext, Context, Operator};
use crate::record::{Batch, Record, into_records};
use std::time::Instant;
use stratum_core::eval::Datum;
use stratum_core::ir::{Service, ServiceInput};
use stratum_core::types::{DataType, Field};
use stratum_ml::imported::ImportedModel;
use stratum_ml::search::{Prediction, TrainedModel};
use stratum_ml::{ModelStore, StoredModel};

enum Model {
    Trained(Box<TrainedModel>),
    Imported(Box<ImportedModel>),
}

/// What a `predict()` call or a service predicts with: a model loaded from the store.
pub struct Predictor {
    model: Model,
    /// The positions of the input fields by name, to read records by name.
    fields: std::collections::HashMap<String, usize>,
    output: DataType,
}

/// Why a service has no model to predict with; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum NoPredictor {
    /// The application has no such service.
    #[error("no service `{0}`")]
    NoService(String),
    /// No model store to load from.
    #[error("needs model `{model}`: no model store is configured")]
    NoStore {
        /// The model needed.
        model: String,
    },
    /// The model has no version in the store.
    #[error("needs model `{model}`: {source}; train it first with `stratum train FILE --model {model}`")]
    NotTrained {
        /// The model needed.
        model: String,
        /// What the store said.
        #[source]
        source: Box<stratum_ml::Error>,
    },
    /// The model's artifact cannot be used.
    #[error("needs model `{model}`: {source}")]
    Unusable {
        /// The model.
        model: String,
        /// Why.
        #[source]
        source: Box<stratum_ml::Error>,
    },
}

impl Predictor {
    /// Loads the latest stored version of the model behind `service`; an error says what to do.
    pub fn load(
        service: &str,
        component: &str,
        fields: &[Field],
        context: &BuildContext,
    ) -> Result<Predictor, NoPredictor> {
        let application = context.application;
        let service_item = application
            .services
            .iter()
            .find(|item| item.name == service)
            .ok_or_else(|| NoPredictor::NoService(service.into()))?;
        let model_name = &service_item.model;
        let model_item = application.models.iter().find(|model| model.name == *model_name);
        let output = model_item.map_or(DataType::String, |model| model.output.clone());
        let store_root = context.model_store.ok_or_else(|| NoPredictor::NoStore { model: model_name.clone() })?;
        let store = ModelStore::new(store_root);
        let stored = store
            .load_any(model_name, None)
            .map_err(|source| NoPredictor::NotTrained { model: model_name.clone(), source: Box::new(source) })?;
        let model = match stored {
            StoredModel::Trained(artifact) => Model::Trained(Box::new(artifact.model)),
            StoredModel::Imported(artifact) => {
                let unusable = |source| NoPredictor::Unusable { model: model_name.clone(), source: Box::new(source) };
                let bytes = store.imported_bytes(&artifact).map_err(unusable)?;
                Model::Imported(Box::new(
                    ImportedModel::from_bytes(&bytes, Some(artifact.inputs.clone())).map_err(unusable)?,
                ))
            }
        };
        tracing::info!(component, service, model = model_name.as_str(), "model loaded for predict()");
        Ok(Predictor {
            model,
            fields: fields.iter().enumerate().map(|(index, field)| (field.name.clone(), index)).collect(),
            output,
        })
    }

    /// One prediction per record (whose first values are the input fields; earlier predictions may follow).
    pub fn predict(&self, records: &[Record], context: &Context) -> Vec<Datum> {
        type Reader<'a> = Box<dyn Fn(&str) -> Datum + 'a>;
        let readers: Vec<Reader> = records
            .iter()
            .map(|record| {
                Box::new(move |name: &str| {
                    self.fields.get(name).and_then(|index| record.get(*index).cloned()).unwrap_or(Datum::Null)
                }) as Box<dyn Fn(&str) -> Datum>
            })
            .collect();
        let references: Vec<&dyn Fn(&str) -> Datum> = readers.iter().map(|reader| reader.as_ref()).collect();
        let predictions = match &self.model {
            Model::Trained(model) => model.predict(&references),
            Model::Imported(model) => match model.predict(&references) {
                Ok(predictions) => predictions,
                Err(error) => {
                    context.metrics.count_error();
                    tracing::warn!(component = context.component, %error, "prediction failed");
                    return vec![Datum::Null; records.len()];
                }
            },
        };
        predictions.into_iter().map(|prediction| self.datum(prediction)).collect()
    }

    fn datum(&self, prediction: Prediction) -> Datum {
        match prediction {
            Prediction::Class { label, .. } => {
                stratum_ml::data::parse_cell(&label, &self.output).unwrap_or(Datum::Text(label))
            }
            Prediction::Value(value) if *self.output.without_optional() == DataType::Int => {
                Datum::Int(value.round() as i64)
            }
            Prediction::Value(value) => Datum::Float(value),
            Prediction::Cluster(cluster) => Datum::Int(cluster as i64),
        }
    }
}

/// The stream part of an inference service: each record of its input goes on with the model's prediction
/// appended (the service's `fields`), to its output sink and to whatever shows the service.
pub struct ServiceOperator {
    predictor: Predictor,
}

/// Builds the operator of a service that reads a stream or source.
pub fn build_service(service: &Service, context: &BuildContext) -> Result<Box<dyn Operator>, Error> {
    let build_error = |message: String| Error::Build { component: service.name.clone(), message };
    let ServiceInput::Stream { name: input } = &service.input else {
        return Err(build_error("takes requests over HTTP, not a stream".into()));
    };
    let fields = context.application.fields_of(input).ok_or_else(|| build_error(format!("no input `{input}`")))?;
    let predictor = Predictor::load(&service.name, &service.name, fields, context)
        .map_err(|error| Error::Model { component: service.name.clone(), source: Box::new(error) })?;
    Ok(Box::new(ServiceOperator { predictor }))
}

impl Operator for ServiceOperator {
    fn process(&mut self, _port: usize, batch: Batch, out: &mut Vec<Record>, context: &Context) {
        let records = into_records(batch);
        let predictions = self.predictor.predict(&records, context);
        out.extend(records.into_iter().zip(predictions).map(|(mut record, prediction)| {
            record.push(prediction);
            record
        }));
    }

    fn tick(&mut self, _now: Instant, _out: &mut Vec<Record>, _context: &Context) {}

    fn finish(&mut self, _out: &mut Vec<Record>, _context: &Context) {}
}
