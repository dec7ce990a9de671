//! The OpenAPI 3.1 document, generated from the route table ([`crate::routes::routes`]) and the JSON schemas the
//! answer types derive: nothing about the API is written twice.

use crate::table::{Access, Body, Route};
use crate::views::ErrorBody;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted: the new version starts once the running one has drained",
        400 => "The request is not what the route takes",
        401 => "No bearer token, or an unknown one",
        403 => "The token is the viewer's, and this needs the operator's",
        404 => "No such thing",
        409 => "A version is being applied already",
        413 => "The request body is larger than the route accepts",
        422 => "The application has errors, or no plan",
        429 => "Overloaded: try again after Retry-After",
        500 => "The server failed",
        503 => "Not running now (starting, restarting or failed): try again after Retry-After",
        _ => "",
    }
}

/// `GET /v1/models/{name}` → `get_models_name`.
fn operation_id(route: &Route) -> String {
    let words: Vec<&str> = route
        .path
        .split(['/', '.', '{', '}'])
        .filter(|word| !word.is_empty() && *word != "v1")
        .map(|word| word.trim_end_matches(".json"))
        .collect();
    format!("{}_{}", route.method.as_str().to_lowercase(), words.join("_"))
}

/// The OpenAPI 3.1 document of `routes`.
pub fn document(routes: &[Route]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas".into())
        .into_generator();
    let error_schema = generator.subschema_for::<ErrorBody>().to_value();
    let mut paths: Map<String, Value> = Map::new();
    for route in routes {
        let mut responses = Map::new();
        let (status, body) = route.response;
        let content = match body {
            Body::Json(schema_of) => json!({ "application/json": { "schema": schema_of(&mut generator).to_value() } }),
            Body::Text(media_type) => json!({ media_type: { "schema": { "type": "string" } } }),
        };
        responses.insert(status.to_string(), json!({ "description": reason(status), "content": content }));
        let mut errors = route.errors.clone();
        if route.access != Access::Public {
            errors.extend([401, 403]);
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(
                status.to_string(),
                json!({
                    "description": reason(status),
                    "content": { "application/json": { "schema": error_schema.clone() } },
                }),
            );
        }
        let security = match route.access {
            Access::Public => json!([]),
            Access::Viewer => json!([{ "viewer": [] }, { "operator": [] }]),
            Access::Operator => json!([{ "operator": [] }]),
            Access::Agent => json!([{ "agent": [] }]),
            Access::AgentOrOperator => json!([{ "agent": [] }, { "operator": [] }]),
        };
        let mut operation = json!({
            "operationId": operation_id(route),
            "summary": route.summary,
            "security": security,
            "responses": responses,
        });
        if !route.parameters.is_empty() {
            operation["parameters"] = route
                .parameters
                .iter()
                .map(|parameter| {
                    json!({
                        "name": parameter.name,
                        "in": parameter.location,
                        "required": parameter.location == "path",
                        "description": parameter.description,
                        "schema": { "type": "string" },
                    })
                })
                .collect();
        }
        match route.request {
            Some(Body::Json(schema_of)) => {
                operation["requestBody"] = json!({
                    "required": true,
                    "content": { "application/json": { "schema": schema_of(&mut generator).to_value() } },
                });
            }
            Some(Body::Text(media_type)) => {
                operation["requestBody"] = json!({
                    "required": true,
                    "content": { media_type: { "schema": { "type": "string", "format": "binary" } } },
                });
            }
            None => {}
        }
        let item = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        item[route.method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Stratum control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The running application: its topology, components, services, models, events, metric series \
                            and dashboards; checking and applying new versions; predictions; and, on `stratum server`, \
                            the agents' protocol and training on the agents.",
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {
                "operator": { "type": "http", "scheme": "bearer", "description": "Reads and changes." },
                "viewer": { "type": "http", "scheme": "bearer", "description": "Reads only." },
                "agent": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The cluster's join token: the agents' protocol, model artifacts and data blobs.",
                },
            },
        },
    })
}
