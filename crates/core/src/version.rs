//! The version checks of the contracts between crates and machines (the IR, the Plan): a document of another
//! version is refused when it is read, with a message that names both versions, instead of being half understood.

use serde::Deserialize;

/// Reads a version number and accepts only `supported`.
pub(crate) fn expect<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    what: &str,
    supported: u32,
) -> Result<u32, D::Error> {
    let version = u32::deserialize(deserializer)?;
    if version == supported {
        Ok(version)
    } else {
        Err(serde::de::Error::custom(format!(
            "this {what} is version {version}, but this Stratum reads {what} version {supported}: produce it again \
             with this release (`stratum check`/`stratum plan`), or run the same release everywhere"
        )))
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::{Application, IR_VERSION};
    use crate::plan::Plan;

    #[test]
    fn an_ir_or_plan_of_another_version_is_refused_naming_both() {
        let app = Application { ir_version: IR_VERSION, name: "demo".into(), ..Application::default() };
        let mut json = serde_json::to_value(&app).unwrap();
        assert_eq!(serde_json::from_value::<Application>(json.clone()).unwrap(), app);
        json["ir_version"] = serde_json::json!(IR_VERSION + 1);
        let error = serde_json::from_value::<Application>(json).unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "this IR is version {}, but this Stratum reads IR version {IR_VERSION}",
                IR_VERSION + 1
            )),
            "{error}"
        );

        let plan = Plan {
            plan_version: crate::plan::PLAN_VERSION,
            app: "demo".into(),
            assignments: Vec::new(),
            hosts: Vec::new(),
            links: Vec::new(),
            objective: crate::plan::Objective {
                path_latency_ms: 0.0,
                cross_tier_traffic: crate::units::Bandwidth(0.0),
                hourly_cost: 0.0,
                score: 0.0,
            },
        };
        let mut plan = serde_json::to_value(&plan).unwrap();
        plan["plan_version"] = serde_json::json!(99);
        let error = serde_json::from_value::<Plan>(plan).unwrap_err().to_string();
        assert!(error.contains("this Plan is version 99, but this Stratum reads Plan version 1"), "{error}");
    }
}
