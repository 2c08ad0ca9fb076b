//! The `wasm` engine's parameters, parsed once from Bacalhau's `{Type, Params}` map.
//!
//! Keys are matched case-insensitively, as Bacalhau does (`EntryModule`, `entrymodule`, ...).

use serde_json::Value;
use shoal_types::SpecConfig;

use crate::ExecutorError;
use crate::params::{kind_of, string_list};

/// The function called when a job names none: WASI's command entry point.
pub const DEFAULT_ENTRYPOINT: &str = "_start";

/// What a wasm task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmParams {
    /// Path of the entry module inside the task (`/app/main.wasm`).
    pub entry_module: String,
    /// The exported zero-argument function to call.
    pub entrypoint: String,
    /// Arguments after argv[0].
    pub parameters: Vec<String>,
    /// Modules instantiated before the entry module, which may import their exports.
    pub import_modules: Vec<String>,
}

impl WasmParams {
    /// Reads and checks the params, naming the offending one in the error.
    pub fn parse(engine: &SpecConfig) -> Result<Self, ExecutorError> {
        let entry_module = match engine.param("EntryModule") {
            None | Some(Value::Null) => return Err(missing_entry_module()),
            Some(Value::String(s)) if s.trim().is_empty() => return Err(missing_entry_module()),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Object(_)) => {
                return Err(ExecutorError::user(
                    "wasm engine: EntryModule is an input source object (the pre-v1 shape); \
                     give the module's path inside the task instead and add the module as an \
                     input with that Target",
                ));
            }
            Some(other) => {
                return Err(ExecutorError::user(format!(
                    "wasm engine: EntryModule must be a string path, got {}; \
                     write it like EntryModule: /app/main.wasm",
                    kind_of(other)
                )));
            }
        };
        let entrypoint = match engine.param("Entrypoint") {
            None | Some(Value::Null) => DEFAULT_ENTRYPOINT.to_string(),
            Some(Value::String(s)) if s.trim().is_empty() => DEFAULT_ENTRYPOINT.to_string(),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(other) => {
                return Err(ExecutorError::user(format!(
                    "wasm engine: Entrypoint must be the name of an exported function, got {}; \
                     leave it out to call {DEFAULT_ENTRYPOINT}",
                    kind_of(other)
                )));
            }
        };
        Ok(WasmParams {
            entry_module,
            entrypoint,
            parameters: string_list(engine, "wasm", "Parameters", "[arg1, arg2]")?,
            import_modules: string_list(engine, "wasm", "ImportModules", "[/app/lib.wasm]")?,
        })
    }
}

fn missing_entry_module() -> ExecutorError {
    ExecutorError::user(
        "wasm engine: EntryModule is required (the path of the .wasm module inside the task, \
         e.g. /app/main.wasm)",
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(params: Value) -> SpecConfig {
        let mut spec = SpecConfig::of("wasm");
        spec.params = params.as_object().cloned().unwrap_or_default();
        spec
    }

    #[test]
    fn params_keys_are_case_insensitive_and_entrypoint_defaults_to_start() {
        let parsed = WasmParams::parse(&spec(json!({
            "entrymodule": "/app/main.wasm",
            "PARAMETERS": ["a", 2, true],
        })))
        .unwrap();
        assert_eq!(parsed.entry_module, "/app/main.wasm");
        assert_eq!(parsed.entrypoint, "_start");
        assert_eq!(parsed.parameters, ["a", "2", "true"]);
        assert!(parsed.import_modules.is_empty());
    }

    #[test]
    fn missing_entry_module_names_the_param_and_an_example() {
        let err = WasmParams::parse(&spec(json!({}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "wasm engine: EntryModule is required (the path of the .wasm module inside the task, \
             e.g. /app/main.wasm)"
        );
    }

    #[test]
    fn legacy_entry_module_object_is_rejected_with_the_v1_shape() {
        let err = WasmParams::parse(&spec(json!({
            "EntryModule": {"Source": {"Type": "inline"}},
        })))
        .unwrap_err();
        assert!(err.to_string().contains("input source object"), "{err}");
    }

    #[test]
    fn non_list_parameters_are_rejected_naming_the_key() {
        let err = WasmParams::parse(&spec(json!({
            "EntryModule": "/m.wasm",
            "Parameters": "a b",
        })))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("wasm engine: Parameters must be a list"),
            "{err}"
        );
    }

    #[test]
    fn nested_list_items_are_rejected_naming_the_index() {
        let err = WasmParams::parse(&spec(json!({
            "EntryModule": "/m.wasm",
            "ImportModules": ["/a.wasm", ["/b.wasm"]],
        })))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("ImportModules[1] must be a string"),
            "{err}"
        );
    }
}
