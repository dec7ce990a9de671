//! No generated command line can drift from the binary again: every Stratum command line in every file that
//! `stratum generate` writes (compose, Kubernetes, Ansible), for every example, is parsed with the binary's own
//! command-line definition, with the environment its container or unit gives it; and the addresses and ports in
//! them agree — agents reach the control plane where it listens, advertise what they listen on, and find the
//! broker where it runs.

use crate::Cli;
use clap::{CommandFactory, Parser};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::Path;

const EXAMPLES: &[&str] =
    &["traffic/traffic.stratum", "predictive_maintenance/factory.stratum", "energy/substations.stratum"];

/// One Stratum command line found in a generated file, with the environment it runs with.
#[derive(Debug)]
struct Found {
    place: String,
    words: Vec<String>,
    environment: BTreeMap<String, String>,
    /// For a health check: the place of the command whose health it checks.
    checks: Option<String>,
}

/// Generates `target` for an example into a fresh temporary folder (removed when the answer is dropped).
fn generate(target: &str, example: &str) -> tempfile::TempDir {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(example);
    let folder = tempfile::tempdir().unwrap();
    let output = folder.path().to_path_buf();
    let cli = Cli::try_parse_from([
        "stratum",
        "generate",
        target,
        &file.to_string_lossy(),
        "-o",
        &output.to_string_lossy(),
        "--format",
        "json",
    ])
    .expect("the generate command parses");
    let crate::Command::Generate(args) = cli.command else { panic!("not a generate command") };
    let outcome = crate::commands::generate(args, crate::output::ColorChoice::Never).expect("generate runs");
    assert!(matches!(outcome, crate::Outcome::Success), "generating {target} for {example} failed");
    folder
}

fn yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().into_iter().flatten().filter_map(|word| word.as_str().map(str::to_string)).collect()
}

/// `KEY=VALUE` lines of an environment file.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn compose_commands(folder: &Path) -> Vec<Found> {
    let document = yaml(&folder.join("compose.yaml")).remove(0);
    let mut found = Vec::new();
    for (name, service) in document["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        if !service["image"].as_str().unwrap_or_default().contains("stratum:") {
            continue;
        }
        let mut environment = BTreeMap::new();
        for file in strings(&service["env_file"]) {
            environment.extend(env_file(&folder.join(file)));
        }
        for (key, value) in service["environment"].as_mapping().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            // `${NAME:-default}` is compose's: the default is what runs unless the user sets NAME.
            let value = value.split_once(":-").map_or(value, |(_, default)| default.trim_end_matches('}'));
            environment.insert(key.as_str().unwrap().to_string(), value.to_string());
        }
        let mut words = vec!["stratum".to_string()];
        words.extend(strings(&service["command"]));
        let place = format!("compose service {name}");
        found.push(Found { place: place.clone(), words, environment: environment.clone(), checks: None });
        let check = strings(&service["healthcheck"]["test"]);
        if !check.is_empty() {
            assert_eq!(check[0], "CMD", "{name}'s health check runs without a shell");
            found.push(Found {
                place: format!("{place}'s health check"),
                words: check[1..].to_vec(),
                environment,
                checks: Some(place),
            });
        }
    }
    found
}

fn kubernetes_commands(folder: &Path) -> Vec<Found> {
    let secret = &yaml(&folder.join("secret.yaml"))[0];
    let mut found = Vec::new();
    for path in std::fs::read_dir(folder).unwrap().map(|entry| entry.unwrap().path()) {
        if path.file_name().is_some_and(|name| name == "secret.yaml") {
            continue;
        }
        for document in yaml(&path) {
            let template = match document["kind"].as_str() {
                Some("Job") => &document["spec"]["template"]["spec"],
                Some("Deployment" | "DaemonSet" | "StatefulSet") => &document["spec"]["template"]["spec"],
                _ => continue,
            };
            for container in template["containers"].as_sequence().unwrap() {
                if !container["image"].as_str().unwrap_or_default().starts_with("stratum:") {
                    continue;
                }
                let mut environment = BTreeMap::new();
                for variable in container["env"].as_sequence().into_iter().flatten() {
                    let name = variable["name"].as_str().unwrap().to_string();
                    let value = if let Some(value) = variable["value"].as_str() {
                        value.to_string()
                    } else if let Some(key) = variable["valueFrom"]["secretKeyRef"]["key"].as_str() {
                        secret["stringData"][key]
                            .as_str()
                            .unwrap_or_else(|| panic!("the Secret has no {key}"))
                            .to_string()
                    } else {
                        // The downward API: the pod's IP and name.
                        match variable["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                            Some("status.podIP") => "10.42.0.7".to_string(),
                            Some("metadata.name") => "agent-cloud-workers-0".to_string(),
                            other => panic!("unexpected variable source {other:?}"),
                        }
                    };
                    environment.insert(name, value);
                }
                // Kubernetes expands `$(NAME)` in arguments from the container's variables.
                let expand = |word: &str| {
                    environment
                        .iter()
                        .fold(word.to_string(), |word, (name, value)| word.replace(&format!("$({name})"), value))
                };
                let name = document["metadata"]["name"].as_str().unwrap();
                let mut words = vec!["stratum".to_string()];
                words.extend(strings(&container["args"]).iter().map(|word| expand(word)));
                let place = format!("kubernetes {name}");
                found.push(Found { place: place.clone(), words, environment: environment.clone(), checks: None });
                let probe = strings(&container["readinessProbe"]["exec"]["command"]);
                if !probe.is_empty() {
                    found.push(Found {
                        place: format!("{place}'s probe"),
                        words: probe,
                        environment: environment.clone(),
                        checks: Some(place),
                    });
                }
            }
        }
    }
    found
}

fn ansible_commands(folder: &Path) -> Vec<Found> {
    let inventory = &yaml(&folder.join("inventory.yml"))[0]["all"];
    let secrets = &yaml(&folder.join("secrets.yml"))[0];
    // Every variable a host sees: the inventory's, one host's and the secrets'.
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |mapping: &Value| {
        for (key, value) in mapping.as_mapping().into_iter().flatten() {
            if let Some(value) = value.as_str() {
                variables.insert(key.as_str().unwrap().to_string(), value.to_string());
            }
        }
    };
    add(&inventory["vars"]);
    add(secrets);
    let host = inventory["children"]
        .as_mapping()
        .unwrap()
        .values()
        .filter_map(|group| group["hosts"].as_mapping())
        .flat_map(|hosts| hosts.values())
        .find(|host| host["stratum_node"].is_string())
        .expect("a host in the inventory");
    add(host);
    let fill = |text: &str| {
        variables.iter().fold(text.to_string(), |text, (name, value)| {
            text.replace(&format!("{{{{{name}}}}}"), value).replace(&format!("{{{{ {name} }}}}"), value)
        })
    };
    let mut found = Vec::new();
    for play in yaml(&folder.join("playbook.yml"))[0].as_sequence().unwrap() {
        for task in play["tasks"].as_sequence().into_iter().flatten() {
            let name = task["name"].as_str().unwrap_or_default();
            let content = task["ansible.builtin.copy"]["content"].as_str().unwrap_or_default();
            if let Some(line) = content.lines().find_map(|line| line.strip_prefix("ExecStart=/usr/local/bin/")) {
                let environment = content
                    .lines()
                    .find_map(|line| line.strip_prefix("EnvironmentFile="))
                    .map(|file| environment_written_by(play, file, &fill))
                    .unwrap_or_default();
                let words = fill(line).split_whitespace().map(str::to_string).collect();
                found.push(Found { place: format!("ansible task `{name}`"), words, environment, checks: None });
            }
            let argv = strings(&task["ansible.builtin.command"]["argv"]);
            if let Some(program) = argv.first().filter(|program| program.ends_with("/stratum")) {
                let mut words = vec!["stratum".to_string()];
                words.extend(argv[1..].iter().map(|word| fill(word)));
                let environment = task["environment"]
                    .as_mapping()
                    .into_iter()
                    .flatten()
                    .map(|(key, value)| (key.as_str().unwrap().to_string(), fill(value.as_str().unwrap())))
                    .collect();
                assert_eq!(program, "/usr/local/bin/stratum");
                found.push(Found { place: format!("ansible task `{name}`"), words, environment, checks: None });
            }
        }
    }
    found
}

/// The variables an environment file that a task of the play writes holds.
fn environment_written_by(play: &Value, file: &str, fill: &dyn Fn(&str) -> String) -> BTreeMap<String, String> {
    let task = play["tasks"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|task| task["ansible.builtin.copy"]["dest"].as_str() == Some(file))
        .unwrap_or_else(|| panic!("no task writes {file}"));
    fill(task["ansible.builtin.copy"]["content"].as_str().unwrap())
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// Parses a command line as the binary would, its arguments from the environment included (clap reads
/// `env = "…"` only from the process's environment, so they are given as the options they stand for), and
/// returns the subcommand's name and matches.
fn parse(found: &Found) -> (String, clap::ArgMatches) {
    let command = Cli::command();
    let subcommand_name = found.words.get(1).unwrap_or_else(|| panic!("{}: no subcommand", found.place));
    let subcommand = command
        .find_subcommand(subcommand_name)
        .unwrap_or_else(|| panic!("{}: `{subcommand_name}` is no subcommand of stratum", found.place));
    let mut words = found.words.clone();
    for argument in subcommand.get_arguments() {
        let Some(variable) = argument.get_env().and_then(|name| name.to_str()) else { continue };
        let Some(value) = found.environment.get(variable) else { continue };
        match (argument.get_long(), argument.get_action().takes_values()) {
            (Some(long), true) => words.extend([format!("--{long}"), value.clone()]),
            (Some(long), false) if value == "true" => words.push(format!("--{long}")),
            (Some(_), false) => {}
            // A positional given by the environment, when the command line does not give it.
            (None, _) if words.len() == 2 => words.push(value.clone()),
            (None, _) => {}
        }
    }
    if let Err(error) = Cli::try_parse_from(&words) {
        panic!("{}: `{}` does not parse:\n{error}", found.place, words.join(" "));
    }
    let matches = Cli::command().try_get_matches_from(&words).unwrap();
    let (name, sub) = matches.subcommand().unwrap();
    (name.to_string(), sub.clone())
}

fn value(matches: &clap::ArgMatches, id: &str) -> String {
    matches
        .get_raw(id)
        .and_then(|mut values| values.next())
        .map(|value| value.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|port| port.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {address}"))
}

/// Checks that what the commands say of each other agrees: one control plane, agents and `apply` pointed at
/// its port, agents advertising the port they receive data on, health checks asking the port the process
/// serves, and a broker where agents look for one.
fn agree(target: &str, example: &str, found: &[Found]) {
    let parsed: Vec<(&Found, String, clap::ArgMatches)> = found
        .iter()
        .map(|found| {
            let (name, matches) = parse(found);
            (found, name, matches)
        })
        .collect();
    let servers: Vec<_> = parsed.iter().filter(|(_, name, _)| name == "server").collect();
    assert_eq!(servers.len(), 1, "{target} {example}: one control plane");
    let server_port = port_of(&value(&servers[0].2, "listen"));
    let brokers: Vec<u16> = parsed
        .iter()
        .filter(|(_, name, _)| name == "broker")
        .map(|(_, _, matches)| port_of(&value(matches, "listen")))
        .collect();
    let mut agents = 0;
    for (found, name, matches) in &parsed {
        match name.as_str() {
            "agent" => {
                agents += 1;
                assert_eq!(
                    port_of(&value(matches, "servers")),
                    server_port,
                    "{}: the control plane's port",
                    found.place
                );
                let advertised = value(matches, "advertise");
                assert_eq!(
                    port_of(&advertised),
                    port_of(&value(matches, "data_listen")),
                    "{}: advertises what it listens on",
                    found.place
                );
                let broker = value(matches, "broker");
                if !broker.is_empty() {
                    assert!(brokers.contains(&port_of(&broker)), "{}: no broker listens at {broker}", found.place);
                }
                let api = value(matches, "api");
                let health = found.environment.get("STRATUM_HEALTH_URL").cloned().unwrap_or_default();
                if !health.is_empty() {
                    assert_eq!(
                        port_of(health.trim_end_matches("/health")),
                        port_of(&api),
                        "{}: health asks its API",
                        found.place
                    );
                }
            }
            "apply" => {
                assert_eq!(
                    port_of(&value(matches, "server")),
                    server_port,
                    "{}: apply reaches the control plane",
                    found.place
                )
            }
            "health" => {
                let url = value(matches, "url");
                // `scheme://host:port/path`, or `host:port/path` (TLS, then plain HTTP).
                let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
                let port = port_of(authority.split('/').next().unwrap_or_default());
                let checked = found.checks.as_deref().unwrap_or_else(|| panic!("{}: checks nothing", found.place));
                let (_, name, matches) = parsed
                    .iter()
                    .find(|(other, _, _)| other.place == checked)
                    .unwrap_or_else(|| panic!("{}: no command at {checked}", found.place));
                // What the checked process serves: the server and the broker their listener, an agent its API.
                let serves = port_of(&value(matches, if name == "agent" { "api" } else { "listen" }));
                assert_eq!(port, serves, "{}: asks {url}, but {checked} (`{name}`) serves {serves}", found.place);
            }
            _ => {}
        }
    }
    assert!(agents > 0, "{target} {example}: no agent");
}

#[test]
fn every_generated_command_line_parses_and_agrees() {
    for example in EXAMPLES {
        agree("compose", example, &compose_commands(generate("compose", example).path()));
        agree("kubernetes", example, &kubernetes_commands(generate("kubernetes", example).path()));
        agree("ansible", example, &ansible_commands(generate("ansible", example).path()));
    }
}

#[test]
fn a_wrong_command_line_is_caught() {
    // The check above must be able to fail: the old generated agent command did not parse.
    let found = Found {
        place: "old".into(),
        words: ["stratum", "agent", "--name", "x", "--join", "host:7878", "--plan", "/etc/stratum/plan.json"]
            .map(String::from)
            .to_vec(),
        environment: BTreeMap::new(),
        checks: None,
    };
    assert!(std::panic::catch_unwind(|| parse(&found)).is_err());
}

#[test]
fn generating_again_keeps_the_tokens() {
    let generated = generate("compose", EXAMPLES[0]);
    let folder = generated.path();
    let first = std::fs::read_to_string(folder.join("secrets/join.env")).unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(EXAMPLES[0]);
    let cli = Cli::try_parse_from([
        "stratum",
        "generate",
        "compose",
        &file.to_string_lossy(),
        "-o",
        &folder.to_string_lossy(),
    ])
    .unwrap();
    let crate::Command::Generate(args) = cli.command else { unreachable!() };
    crate::commands::generate(args, crate::output::ColorChoice::Never).unwrap();
    assert_eq!(std::fs::read_to_string(folder.join("secrets/join.env")).unwrap(), first);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(folder.join("secrets/join.env")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "secrets are the owner's only");
}
