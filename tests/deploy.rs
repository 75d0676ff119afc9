//! The example deployment under `deploy/` is checked against the program it deploys: the
//! ConfigMap's config passes `hashgate check-config`; the Deployment's ports, probes, mounts
//! and grace period agree with that config; the Service sends TCP 1935 to the RTMP port; the
//! HAProxy example passes `haproxy -c`.

mod common;

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

use serde::Deserialize;

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

fn seconds(text: &str) -> u64 {
    let text = text.trim_matches('"');
    text.strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .expect("a duration in seconds")
}

#[test]
fn the_kubernetes_example_agrees_with_the_config_it_deploys() {
    let config_maps = documents("kubernetes/configmap.yaml");
    let map = of_kind(&config_maps, "ConfigMap")[0];
    let config_text = map["data"]["config.toml"]
        .as_str()
        .expect("data.config.toml");

    // Valid for hashgate itself, with the pod's folders mapped to a temporary one.
    let dir = common::temp_dir();
    let root = dir.path().display().to_string();
    for folder in ["var/cache/hashgate", "var/log/hashgate"] {
        std::fs::create_dir_all(dir.path().join(folder)).expect("folder");
    }
    let local = config_text.replace("\"/var/", &format!("\"{root}/var/"));
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &local).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("check-config")
        .arg(&file)
        .env("HASHGATE_ADMIN_TOKEN", "a-test-token-long-enough")
        .output()
        .expect("check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let config: toml::Value = toml::from_str(config_text).expect("toml");
    let rtmp_port = port_of(config["server"]["listen"].as_str().expect("server.listen"));
    let admin_listen = config["admin"]["listen"].as_str().expect("admin.listen");
    let admin_port = port_of(admin_listen);
    let drain = seconds(
        config["limits"]["drain_timeout"]
            .as_str()
            .expect("drain_timeout"),
    );
    assert!(
        config["cluster"]["redis"].as_str().is_some(),
        "a fleet example sets cluster.redis"
    );

    let deployments = documents("kubernetes/deployment.yaml");
    let deployment = of_kind(&deployments, "Deployment")[0];
    let pod = &deployment["spec"]["template"];
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    for (k, v) in selector.as_mapping().expect("selector") {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "the selector picks the pods"
        );
    }
    let container = &pod["spec"]["containers"][0];
    let ports = container["ports"].as_sequence().expect("ports");
    let named = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("container port {name}"))
    };
    assert_eq!(named("rtmp"), rtmp_port, "the RTMP port is server.listen's");
    assert_eq!(
        named("admin"),
        admin_port,
        "the admin port is admin.listen's"
    );
    let readiness = &container["readinessProbe"]["httpGet"];
    assert_eq!(readiness["path"], "/healthz");
    assert_eq!(readiness["port"], "admin");
    // Liveness must not be /healthz: it is 503 while draining and before the fleet is read.
    let liveness = &container["livenessProbe"]["httpGet"];
    assert_eq!(liveness["path"], "/livez");
    assert_eq!(liveness["port"], "admin");
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_path = args
        .iter()
        .skip_while(|a| **a != "--config")
        .nth(1)
        .expect("--config");
    assert_eq!(args[0], "serve");
    let mounts = container["volumeMounts"].as_sequence().expect("mounts");
    let mounted = |path: &str| {
        mounts
            .iter()
            .any(|m| m["mountPath"].as_str().is_some_and(|p| path.starts_with(p)))
    };
    assert!(mounted(config_path), "{config_path} is mounted");
    let config_volume = pod["spec"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["configMap"]["name"].as_str().is_some())
        .expect("a ConfigMap volume");
    assert_eq!(config_volume["configMap"]["name"], map["metadata"]["name"]);
    for list in config["lists"].as_array().expect("lists") {
        let path = list["path"].as_str().expect("list path");
        assert!(mounted(path), "the list cache {path} is on a volume");
    }
    assert!(mounted(
        config["events"]["log"].as_str().expect("events.log")
    ));
    if !admin_listen.starts_with("127.") {
        let env = container["env"].as_sequence().expect("env");
        assert!(
            env.iter().any(|e| e["name"] == "HASHGATE_ADMIN_TOKEN"),
            "an admin API off loopback needs its token"
        );
    }
    let pre_stop: u64 = container["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("preStop sleep seconds");
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        grace >= pre_stop + 2 * drain,
        "grace {grace} s covers preStop {pre_stop} s and the drain ({drain} s, twice for the listener)"
    );

    let services = documents("kubernetes/service.yaml");
    let rtmp = of_kind(&services, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == deployment["metadata"]["name"])
        .expect("the RTMP Service");
    let port = &rtmp["spec"]["ports"][0];
    assert_eq!(port["port"].as_u64(), Some(1935));
    assert_eq!(port["protocol"], "TCP");
    assert_eq!(port["targetPort"], "rtmp");
    for (k, v) in rtmp["spec"]["selector"].as_mapping().expect("selector") {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "the Service reaches the pods"
        );
    }
}

#[test]
fn the_haproxy_example_is_valid() {
    common::require("haproxy");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg");
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("haproxy -c");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
