//! What a route is: its method, path, who may call it, what it takes and answers, and its handler. The table of
//! every route ([`crate::routes::routes`]) is made of these; the router and the OpenAPI document are built from it.

use crate::plane::ApiState;
use axum::http::Method;
use axum::routing::MethodRouter;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use std::sync::Arc;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Anyone who reaches the port: predictions, the OpenAPI document.
    Public,
    /// The viewer's or the operator's token.
    Viewer,
    /// The operator's token only.
    Operator,
    /// The cluster's join token only: the agents' protocol.
    Agent,
    /// The join token or the operator's: model artifacts and data blobs, which agents and operators fetch.
    AgentOrOperator,
}

impl Access {
    /// Whether a caller with `role` may call a route with this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Viewer => matches!(role, Role::Viewer | Role::Operator),
            Access::Operator => role == Role::Operator,
            Access::Agent => role == Role::Agent,
            Access::AgentOrOperator => matches!(role, Role::Agent | Role::Operator),
        }
    }
}

/// A caller, as its bearer token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// No token, or an unknown one.
    Anonymous,
    /// The viewer's token.
    Viewer,
    /// The operator's token.
    Operator,
    /// The join token (or an agent's key): the agents' routes.
    Agent,
}

/// How a route's body schema is made.
pub type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// What a route takes or answers.
#[derive(Clone, Copy)]
pub enum Body {
    /// JSON of this schema.
    Json(SchemaOf),
    /// Another media type, such as Prometheus' text format.
    Text(&'static str),
}

/// A parameter of a route, for the OpenAPI document.
#[derive(Clone, Copy)]
pub struct Parameter {
    /// Its name.
    pub name: &'static str,
    /// `path` or `query`.
    pub location: &'static str,
    /// What it is.
    pub description: &'static str,
}

/// One route of the API: what it takes and answers, and who may call it; the OpenAPI document is made from these.
pub struct Route {
    /// Its method.
    pub method: Method,
    /// Its path, with `{parameters}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line on what it does.
    pub summary: &'static str,
    /// Its parameters.
    pub parameters: Vec<Parameter>,
    /// What it takes, if anything.
    pub request: Option<Body>,
    /// The answer on success, and its status.
    pub response: (u16, Body),
    /// The error statuses the route answers besides those every route may (401, 403 by access).
    pub errors: Vec<u16>,
    /// The largest request body accepted.
    pub body_limit: usize,
    pub(crate) handler: MethodRouter<Arc<ApiState>>,
}

pub(crate) fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Source files and JSON requests are small; a larger body is refused with 413.
const SMALL_BODY: usize = 1 << 20;

impl Route {
    pub(crate) fn new(
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: MethodRouter<Arc<ApiState>>,
    ) -> Route {
        Route {
            method,
            path,
            access,
            summary,
            parameters: Vec::new(),
            request: None,
            response: (200, Body::Json(schema::<serde_json::Value>)),
            errors: Vec::new(),
            body_limit: SMALL_BODY,
            handler,
        }
    }

    pub(crate) fn answers<T: JsonSchema>(mut self) -> Route {
        self.response = (self.response.0, Body::Json(schema::<T>));
        self
    }

    pub(crate) fn status(mut self, status: u16) -> Route {
        self.response.0 = status;
        self
    }

    pub(crate) fn text(mut self, media_type: &'static str) -> Route {
        self.response = (self.response.0, Body::Text(media_type));
        self
    }

    pub(crate) fn takes<T: JsonSchema>(mut self) -> Route {
        self.request = Some(Body::Json(schema::<T>));
        self.errors.extend([400, 413]);
        self
    }

    pub(crate) fn takes_bytes(mut self, media_type: &'static str) -> Route {
        self.request = Some(Body::Text(media_type));
        self.errors.extend([400, 413]);
        self
    }

    pub(crate) fn parameter(mut self, name: &'static str, location: &'static str, description: &'static str) -> Route {
        self.parameters.push(Parameter { name, location, description });
        self
    }

    pub(crate) fn errors(mut self, statuses: &[u16]) -> Route {
        self.errors.extend_from_slice(statuses);
        self
    }

    pub(crate) fn body_limit(mut self, bytes: usize) -> Route {
        self.body_limit = bytes;
        self
    }
}
