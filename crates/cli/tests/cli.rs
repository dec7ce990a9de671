//! End-to-end tests of the `stratum` binary as a user runs it: exit codes, output formats, colour rules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the commands run: a copy of the examples as the repository has them (its tracked files), made once per
/// test run. Nothing a user ran in the checkout — `stratum up` leaves `.stratum/` and simulated data there — can
/// change what these tests see, and they write nothing into it.
fn working_folder() -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        let tracked = Command::new("git").args(["ls-files", "-z", "examples"]).current_dir(repository()).output();
        let files: Vec<PathBuf> = match tracked {
            Ok(output) if output.status.success() && !output.stdout.is_empty() => output
                .stdout
                .split(|byte| *byte == 0)
                .filter(|name| !name.is_empty())
                .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
                .collect(),
            // Not a git checkout (a source archive): nothing was run in it.
            _ => walk(&repository(), Path::new("examples")),
        };
        for file in files {
            let target = folder.join(&file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(repository().join(&file), &target).unwrap();
        }
        folder
    })
}

/// Every file under `relative`, relative to `root`.
fn walk(root: &Path, relative: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join(relative)).unwrap() {
        let path = relative.join(entry.unwrap().file_name());
        if root.join(&path).is_dir() {
            files.extend(walk(root, &path));
        } else {
            files.push(path);
        }
    }
    files
}

fn stratum(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(arguments)
        .current_dir(working_folder())
        .env_remove("NO_COLOR")
        .output()
        .expect("the stratum binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch file under cargo's per-test temporary folder.
fn scratch(name: &str, contents: &[u8]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const TRAFFIC: &str = "examples/traffic/traffic.stratum";

#[test]
fn checking_the_traffic_example_prints_a_summary() {
    let output = stratum(&["check", TRAFFIC]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("app `traffic` (Smart traffic management)"), "{stdout}");
    for count in ["3 nodes", "2 sources", "4 streams", "1 model", "1 service"] {
        assert!(stdout.contains(count), "missing `{count}` in {stdout}");
    }
    assert!(stdout.contains("no problems found"));
}

#[test]
fn errors_exit_with_one_and_say_what_to_fix() {
    let traffic = std::fs::read_to_string(repository().join(TRAFFIC)).unwrap();
    let broken = traffic.replace("from = detections\n  where", "from = detection\n  where");
    let path = scratch("broken_traffic.stratum", broken.as_bytes());
    std::fs::copy(repository().join("examples/traffic/shared.stratum"), path.with_file_name("shared.stratum")).unwrap();
    let output = stratum(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("error[E0102]: unknown name `detection`"), "{stderr}");
    assert!(stderr.contains("did you mean `detections`?"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no colour when not on a terminal");
}

#[test]
fn json_output_has_one_object_per_diagnostic() {
    let path = scratch("json_case.stratum", b"app demo\nnode a { tier = egde  cpu = 4  memory = 4 }\n");
    let output = stratum(&["check", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(report["ok"], false);
    assert_eq!(report["errors"], 2);
    let diagnostics = report["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 2);
    let first = &diagnostics[0];
    assert_eq!(first["code"], "E0205");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["line"], 2);
    assert_eq!(first["column"], 17);
    assert_eq!(first["byte_start"], 25);
    assert_eq!(first["byte_end"], 29);
    assert_eq!(first["help"], "did you mean `edge`?");
    assert!(first["labels"].is_array() && first["message"].is_string() && first["file"].is_string());
}

#[test]
fn emit_ir_prints_the_versioned_model() {
    let output = stratum(&["check", TRAFFIC, "--emit", "ir"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let ir: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(ir["ir_version"], stratum_core::IR_VERSION);
    assert_eq!(ir["name"], "traffic");
    let counts = ir["streams"].as_array().unwrap().iter().find(|stream| stream["name"] == "counts").unwrap();
    let fields: Vec<&str> =
        counts["fields"].as_array().unwrap().iter().map(|field| field["name"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "camera",
            "window_start",
            "window_end",
            "vehicles",
            "avg_speed",
            "p95_speed",
            "speeding",
            "north_south",
            "east_west"
        ]
    );
}

#[test]
fn explain_schema_shows_an_inferred_schema() {
    let output = stratum(&["check", TRAFFIC, "--explain-schema", "counts"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout).trim(),
        "counts { camera: string, window_start: timestamp, window_end: timestamp, vehicles: int, avg_speed: float, p95_speed: float, speeding: int, north_south: int, east_west: int }"
    );
    let missing = stratum(&["check", TRAFFIC, "--explain-schema", "nothing"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn every_code_can_be_explained() {
    let list = stratum(&["explain"]);
    assert_eq!(list.status.code(), Some(0));
    let listing = text(&list.stdout);
    let codes: Vec<&str> = listing.lines().map(|line| line.split_whitespace().next().unwrap()).collect();
    assert!(codes.len() >= 40);
    for code in codes {
        let output = stratum(&["explain", code]);
        assert_eq!(output.status.code(), Some(0), "{code}");
        let explanation = text(&output.stdout);
        assert!(explanation.contains("Wrong:") && explanation.contains("Right:"), "{explanation}");
    }
    assert_eq!(stratum(&["explain", "E9999"]).status.code(), Some(1));
    let json = stratum(&["explain", "e0102", "--format", "json"]);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed["code"], "E0102");
}

#[test]
fn fmt_checks_and_rewrites_files() {
    let formatted = stratum(&["fmt", "--check", TRAFFIC]);
    assert_eq!(formatted.status.code(), Some(0), "{}", text(&formatted.stdout));
    let path = scratch("unformatted.stratum", b"app demo\nnode a {tier=edge cpu=4 memory=4 GiB} # comment\n");
    let check = stratum(&["fmt", "--check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check.stdout).contains("would reformat"));
    let rewrite = stratum(&["fmt", path.to_str().unwrap()]);
    assert_eq!(rewrite.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "app demo\nnode a {\n  tier = edge\n  cpu = 4\n  memory = 4 GiB\n}  # comment\n"
    );
    let broken = scratch("unparsable.stratum", b"node a { cpu = = 4 }\n");
    assert_eq!(stratum(&["fmt", broken.to_str().unwrap()]).status.code(), Some(1));
    // Not UTF-8: refused as `check` refuses it (E0001), and left byte for byte as it was.
    let latin1 = b"app demo\n# caf\xe9\nnode a {tier=edge cpu=4 memory=4 GiB}\n";
    let encoded = scratch("latin1.stratum", latin1);
    let refused = stratum(&["fmt", encoded.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("E0001") && text(&refused.stderr).contains("not UTF-8"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(std::fs::read(&encoded).unwrap(), latin1);
}

#[test]
fn user_mistakes_exit_with_one_not_a_crash() {
    let missing = stratum(&["check", "no/such/file.stratum"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot read `no/such/file.stratum`"));
    assert_eq!(stratum(&["chekc"]).status.code(), Some(1));
    assert_eq!(stratum(&["check"]).status.code(), Some(1));
    let garbage: Vec<u8> = (0..4096u32).map(|index| (index.wrapping_mul(2654435761) >> 13) as u8).collect();
    let path = scratch("garbage.stratum", &garbage);
    let output = stratum(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert_eq!(stratum(&["--help"]).status.code(), Some(0));
}

#[test]
fn colour_only_when_asked_and_never_with_no_color() {
    let path = scratch("colour.stratum", b"app demo\nnode a { tier = edge  cpu = 4  memory = 4 }\n");
    let forced = stratum(&["--color", "always", "check", path.to_str().unwrap()]);
    assert!(text(&forced.stderr).contains("\x1b["));
    let auto = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["check", path.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!text(&auto.stderr).contains('\x1b'));
}

#[test]
fn plan_prints_a_table_and_json() {
    let output = stratum(&["plan", TRAFFIC]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    for expected in ["plan for `traffic`", "fog_downtown", "service signal_timing", "edge -> fog", "objective:"] {
        assert!(table.contains(expected), "missing `{expected}` in\n{table}");
    }
    let json = stratum(&["plan", TRAFFIC, "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["plan_version"], 1);
    let counts =
        plan["assignments"].as_array().unwrap().iter().find(|assignment| assignment["component"] == "counts").unwrap();
    assert_eq!(counts["host"], "fog_downtown");
}

#[test]
fn plan_errors_name_the_numbers() {
    let traffic = std::fs::read_to_string(repository().join(TRAFFIC)).unwrap();
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plan_errors");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(repository().join("examples/traffic/shared.stratum"), folder.join("shared.stratum")).unwrap();
    let small_memory = folder.join("memory.stratum");
    std::fs::write(&small_memory, traffic.replace("  memory = 64 GiB", "  memory = 1 GiB")).unwrap();
    let output = stratum(&["plan", small_memory.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("error[E0601]") && stderr.contains("`fog_downtown` has 1 GiB"), "{stderr}");
    let small_link = folder.join("bandwidth.stratum");
    std::fs::write(&small_link, traffic.replace("  bandwidth = 100 Mbit/s", "  bandwidth = 100 kbit/s")).unwrap();
    let output = stratum(&["plan", small_link.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("error[E0604]") && stderr.contains("100 kbit/s"), "{stderr}");
}

#[test]
fn plan_explains_a_component_and_diffs_against_an_old_plan() {
    let explain = stratum(&["plan", TRAFFIC, "--explain", "counts"]);
    assert_eq!(explain.status.code(), Some(0), "{}", text(&explain.stderr));
    let table = text(&explain.stdout);
    assert!(table.contains("→ fog_downtown"), "{table}");
    assert!(table.contains("cam_5th_main") && table.contains("ruled out: is on edge, not fog"), "{table}");

    let old = stratum(&["plan", TRAFFIC, "--format", "json"]);
    let old_path = scratch("old_plan.json", &old.stdout);
    let same = stratum(&["plan", TRAFFIC, "--diff", old_path.to_str().unwrap()]);
    assert!(text(&same.stdout).contains("14 unchanged"), "{}", text(&same.stdout));
    let mut edited: serde_json::Value = serde_json::from_slice(&old.stdout).unwrap();
    edited["assignments"][0]["host"] = serde_json::json!("somewhere_else");
    edited["assignments"].as_array_mut().unwrap().pop();
    let edited_path = scratch("edited_plan.json", serde_json::to_string(&edited).unwrap().as_bytes());
    let changes = stratum(&["plan", TRAFFIC, "--diff", edited_path.to_str().unwrap(), "--format", "json"]);
    let changes: serde_json::Value = serde_json::from_slice(&changes.stdout).unwrap();
    assert_eq!(changes["moved"].as_array().unwrap().len(), 1);
    assert_eq!(changes["added"].as_array().unwrap().len(), 1);
    let not_a_plan = scratch("not_a_plan.json", b"{}");
    assert_eq!(stratum(&["plan", TRAFFIC, "--diff", not_a_plan.to_str().unwrap()]).status.code(), Some(1));
}

#[test]
fn train_prints_a_leaderboard_and_the_store_lists_the_model() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train_cli");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let mut csv = String::from("size,rooms,price\n");
    for index in 0..120 {
        let size = 40 + index % 60;
        csv.push_str(&format!("{size},{},{}\n", 1 + index % 4, size * 3000 + (index % 7) * 1000));
    }
    std::fs::write(folder.join("houses.csv"), csv).unwrap();
    std::fs::write(
        folder.join("houses.stratum"),
        "app houses\nschema House { size: float  rooms: int  price: float }\n\
         dataset houses { schema = House  path = \"houses.csv\" }\n\
         model price: regressor { data = houses  target = price  features = [size, rooms]\n\
           candidates { ridge { alpha = [0.1, 10] }  gradient_boosting { rounds = 50 } }  evaluate = kfold(3) by mae }\n",
    )
    .unwrap();
    let store = folder.join("store");
    let file = folder.join("houses.stratum");
    let output = stratum(&["train", file.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let printed = text(&output.stdout);
    assert!(
        printed.contains("leaderboard by mae (lower is better)") && printed.contains("saved `price` version 1"),
        "{printed}"
    );

    let json = stratum(&["train", file.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["models"][0]["artifact"]["version"], 2);
    assert_eq!(report["models"][0]["leaderboard"]["entries"].as_array().unwrap().len(), 3);

    let list = stratum(&["model", "list", "--store", store.to_str().unwrap()]);
    assert!(text(&list.stdout).contains("price") && text(&list.stdout).contains("v2"), "{}", text(&list.stdout));
    let show =
        stratum(&["model", "show", "price", "--version", "1", "--store", store.to_str().unwrap(), "--format", "json"]);
    let artifact: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(artifact["version"], 1);
    assert!(artifact["profile"]["latency_p50_us"].as_f64().unwrap() > 0.0);
    assert_eq!(stratum(&["model", "show", "nothing", "--store", store.to_str().unwrap()]).status.code(), Some(1));

    // The operator chooses the version that serves: rolled back, v1 serves pinned, and a later training stores v3
    // without serving it; promoted, the newest serves and later versions serve in their turn.
    let store_arg = store.to_str().unwrap();
    let rollback = stratum(&["model", "rollback", "price", "--store", store_arg]);
    assert_eq!(rollback.status.code(), Some(0), "{}", text(&rollback.stderr));
    assert!(text(&rollback.stdout).contains("`price`: v1 serves in place of v2; pinned"), "{}", text(&rollback.stdout));
    let again = stratum(&["model", "rollback", "price", "--store", store_arg]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("no version before it is stored"), "{}", text(&again.stderr));
    let third = stratum(&["train", file.to_str().unwrap(), "--store", store_arg]);
    assert!(text(&third.stdout).contains("saved `price` version 3"), "{}", text(&third.stdout));
    let list = text(&stratum(&["model", "list", "--store", store_arg]).stdout);
    assert!(list.contains("price") && list.contains(" v1 ") && list.contains("3 version(s)"), "{list}");
    let promote = stratum(&["model", "promote", "price", "--store", store_arg]);
    assert!(
        text(&promote.stdout).contains("`price`: v3 serves in place of v1; versions trained later serve in their turn"),
        "{}",
        text(&promote.stdout)
    );
    let missing = stratum(&["model", "pin", "price", "9", "--store", store_arg]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no version 9") && text(&missing.stderr).contains("v1, v2, v3"));

    let missing = stratum(&["train", TRAFFIC, "--store", store.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("does not exist yet; run what fills it first"), "{}", text(&missing.stderr));

    // The exported model comes back in as an imported one: checked, listed, shown, exported byte for byte.
    let onnx = folder.join("price.onnx");
    let export =
        stratum(&["model", "export", "price", "-o", onnx.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert_eq!(export.status.code(), Some(0), "{}", text(&export.stderr));
    let import = |arguments: &[&str]| {
        let mut all = vec!["model", "import", onnx.to_str().unwrap(), "--store", store.to_str().unwrap()];
        all.extend_from_slice(arguments);
        stratum(&all)
    };
    let unnamed = import(&["--name", "outside"]);
    assert_eq!(unnamed.status.code(), Some(1));
    assert!(text(&unnamed.stderr).contains("name them in order with --inputs"), "{}", text(&unnamed.stderr));
    let wrong_width = import(&["--name", "outside", "--inputs", "size"]);
    assert_eq!(wrong_width.status.code(), Some(1));
    assert!(
        text(&wrong_width.stderr).contains("takes 2 input columns, but 1 are named"),
        "{}",
        text(&wrong_width.stderr)
    );
    let imported = import(&["--name", "outside", "--inputs", "size,rooms"]);
    assert_eq!(imported.status.code(), Some(0), "{}", text(&imported.stderr));
    assert!(text(&imported.stdout).contains("imported `outside` version 1"), "{}", text(&imported.stdout));
    let list = text(&stratum(&["model", "list", "--store", store.to_str().unwrap()]).stdout);
    assert!(list.contains("outside") && list.contains("imported onnx"), "{list}");
    let show = stratum(&["model", "show", "outside", "--store", store.to_str().unwrap(), "--format", "json"]);
    let artifact: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(artifact["origin"], "onnx");
    assert_eq!(artifact["inputs"][1]["name"], "rooms");
    let back = folder.join("back.onnx");
    stratum(&["model", "export", "outside", "-o", back.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&onnx).unwrap());
}

#[test]
fn the_traffic_pipeline_and_its_hourly_batch_run_from_the_command_line() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("traffic_run");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    for name in ["traffic.stratum", "shared.stratum"] {
        std::fs::copy(repository().join("examples/traffic").join(name), folder.join(name)).unwrap();
    }
    let file = folder.join("traffic.stratum");
    let file = file.to_str().unwrap();
    let data_dir = folder.join("run");

    // The whole file needs a trained model for `predict`: the error says how to get one.
    let whole = stratum(&[
        "run-pipeline",
        file,
        "--simulate",
        "--fast",
        "--events",
        "1000",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--broker",
        "mqtt://127.0.0.1:9",
    ]);
    assert_eq!(whole.status.code(), Some(1));
    assert!(
        text(&whole.stderr).contains("train it first with `stratum train FILE --model congestion`"),
        "{}",
        text(&whole.stderr)
    );

    let run = stratum(&[
        "run-pipeline",
        file,
        "--simulate",
        "--fast",
        "--events",
        "100000",
        "--only",
        "history",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let component =
        |name: &str| summary["components"].as_array().unwrap().iter().find(|c| c["component"] == name).unwrap().clone();
    assert_eq!(component("detections")["events_out"], 100_000);
    let windows = component("history")["events_in"].as_u64().unwrap();
    assert!(windows > 0);
    assert!(folder.join("data/history").is_dir());

    let batch = stratum(&["run-batch", file, "hourly", "--format", "json"]);
    assert_eq!(batch.status.code(), Some(0), "{}", text(&batch.stderr));
    let report: serde_json::Value = serde_json::from_slice(&batch.stdout).unwrap();
    assert!(report["rows"].as_u64().unwrap() > 0);
    assert!(folder.join("data/congestion_history.parquet").is_file());

    // A mistake in the query points into the file.
    let broken =
        std::fs::read_to_string(file).unwrap().replace("avg(vehicles) AS vehicles", "avg(vehicle) AS vehicles");
    std::fs::write(file, broken).unwrap();
    let error = stratum(&["run-batch", file, "hourly"]);
    assert_eq!(error.status.code(), Some(1));
    let stderr = text(&error.stderr);
    assert!(stderr.contains("error[E0701]: batch `hourly`: column 'vehicle' not found"), "{stderr}");
    assert!(stderr.contains("traffic.stratum:") && stderr.contains("^^^^^^^ here"), "{stderr}");
}

#[test]
fn run_pipeline_runs_batches_on_their_schedules() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("traffic_scheduled");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(repository().join("examples/traffic/shared.stratum"), folder.join("shared.stratum")).unwrap();
    // The hourly batch every 2 seconds, so that a test sees it run more than once.
    let traffic = std::fs::read_to_string(repository().join(TRAFFIC)).unwrap();
    assert!(traffic.contains("every = 1 h"));
    std::fs::write(folder.join("traffic.stratum"), traffic.replace("every = 1 h", "every = 2 s")).unwrap();
    let file = folder.join("traffic.stratum");
    let run = stratum(&[
        "run-pipeline",
        file.to_str().unwrap(),
        "--simulate",
        "--fast",
        "--events",
        "20000",
        "--only",
        "history,hourly",
        "--for",
        "5s",
        "--data-dir",
        folder.join("run").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let batches = report["batches"].as_array().unwrap();
    assert!(!batches.is_empty() && batches.len() <= 3, "{batches:?}");
    for batch in batches {
        assert_eq!(batch["batch"], "hourly", "{batch}");
        assert!(batch["rows"].as_u64().unwrap() > 0, "{batch}");
    }
    assert!(folder.join("data/congestion_history.parquet").is_file());
}
