//! Connectors to the world outside the application: message brokers (MQTT, NATS, Kafka) and HTTP (a push source
//! and a webhook sink), plus what they share: decoding a message against the schema (or sending it to the
//! dead letters) and filling `{field}` placeholders in topics and subjects.

pub mod http;
pub mod kafka;
pub mod mqtt;
pub mod nats;

use crate::Error;
use crate::component::Context;
use crate::record::{Record, from_json_line};
use stratum_core::eval::{Datum, text_of};
use stratum_core::types::Field;

/// Decodes one message (a JSON object) against `fields` and counts it in. A message that does not fit goes to the
/// dead letters with `origin` (the topic, subject or partition it came from) and the reason.
pub fn decode_message(payload: &[u8], fields: &[Field], origin: &str, context: &Context) -> Option<Record> {
    context.metrics.count_in(1, payload.len());
    let text = String::from_utf8_lossy(payload);
    match from_json_line(&text, fields) {
        Ok(record) => Some(record),
        Err(reason) => {
            context.dead_letter(&format!("{origin}: {reason}"), &text);
            None
        }
    }
}

/// A topic or subject with `{field}` placeholders, filled from each record.
pub struct Template {
    parts: Vec<TemplatePart>,
    /// Characters a value must not bring into the name (level separators and wildcards), replaced by `_`.
    forbidden: &'static [char],
}

enum TemplatePart {
    Text(String),
    Field(usize),
}

impl Template {
    /// Parses a template such as `sensors/{sensor}/readings` against the fields it may name; `forbidden`
    /// characters may not come from a field value (MQTT wildcards, say).
    pub fn parse(
        component: &str,
        template: &str,
        fields: &[Field],
        forbidden: &'static [char],
    ) -> Result<Template, Error> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map(|close| open + close).ok_or_else(|| Error::Build {
                component: component.into(),
                message: format!("`{template}` has an unclosed `{{`"),
            })?;
            parts.push(TemplatePart::Text(rest[..open].into()));
            let name = &rest[open + 1..close];
            let position = fields.iter().position(|field| field.name == name).ok_or_else(|| Error::Build {
                component: component.into(),
                message: format!("`{template}` names `{name}`, which is not a field of its input"),
            })?;
            parts.push(TemplatePart::Field(position));
            rest = &rest[close + 1..];
        }
        parts.push(TemplatePart::Text(rest.into()));
        Ok(Template { parts, forbidden })
    }

    /// The template with a record's values in place of its fields.
    pub fn fill(&self, record: &Record) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                TemplatePart::Text(text) => text.clone(),
                TemplatePart::Field(position) => {
                    text_of(record.get(*position).unwrap_or(&Datum::Null)).replace(self.forbidden, "_")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_core::types::DataType;

    #[test]
    fn placeholders_are_filled_and_values_cannot_add_levels() {
        let fields = vec![Field::new("camera", DataType::String), Field::new("count", DataType::Int)];
        let template = Template::parse("sink", "traffic/{camera}/count", &fields, &['/', '+', '#']).unwrap();
        let record = vec![Datum::Text("north/+1".into()), Datum::Int(3)];
        assert_eq!(template.fill(&record), "traffic/north__1/count");
        let error = Template::parse("sink", "traffic/{lane}", &fields, &['/']).err().unwrap();
        assert!(error.to_string().contains("`lane`"), "{error}");
        assert!(Template::parse("sink", "traffic/{camera", &fields, &['/']).is_err());
    }
}
