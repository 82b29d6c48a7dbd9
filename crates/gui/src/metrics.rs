//! Prometheus text exposition of the suite's state (from the status files and lvs.cf).

use crate::app::App;
use crate::http::Response;
use crate::state;
use serde_json::Value;
use std::fmt::Write;

/// A label value, escaped.
fn lv(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out {
    text: String,
    declared: Vec<&'static str>,
}

impl Out {
    fn metric(&mut self, name: &'static str, kind: &str, help: &str, labels: &str, value: f64) {
        if !self.declared.contains(&name) {
            let _ = writeln!(self.text, "# HELP {name} {help}");
            let _ = writeln!(self.text, "# TYPE {name} {kind}");
            self.declared.push(name);
        }
        if labels.is_empty() {
            let _ = writeln!(self.text, "{name} {value}");
        } else {
            let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
        }
    }
}

const COUNTERS: &[(&str, &str, &str)] = &[
    (
        "conns",
        "piranha_ipvs_connections_total",
        "Connections scheduled",
    ),
    (
        "inpkts",
        "piranha_ipvs_packets_in_total",
        "Incoming packets",
    ),
    (
        "outpkts",
        "piranha_ipvs_packets_out_total",
        "Outgoing packets",
    ),
    ("inbytes", "piranha_ipvs_bytes_in_total", "Incoming bytes"),
    ("outbytes", "piranha_ipvs_bytes_out_total", "Outgoing bytes"),
];
const RATES: &[(&str, &str, &str)] = &[
    (
        "cps",
        "piranha_ipvs_connections_per_second",
        "Connection rate (kernel estimator)",
    ),
    (
        "inpps",
        "piranha_ipvs_packets_in_per_second",
        "Incoming packet rate",
    ),
    (
        "outpps",
        "piranha_ipvs_packets_out_per_second",
        "Outgoing packet rate",
    ),
    (
        "inbps",
        "piranha_ipvs_bytes_in_per_second",
        "Incoming byte rate",
    ),
    (
        "outbps",
        "piranha_ipvs_bytes_out_per_second",
        "Outgoing byte rate",
    ),
];

fn stats(o: &mut Out, labels: &str, s: &Value) {
    for (key, name, help) in COUNTERS {
        if let Some(v) = s.get(key).and_then(Value::as_u64) {
            o.metric(name, "counter", help, labels, v as f64);
        }
    }
    for (key, name, help) in RATES {
        if let Some(v) = s.get(key).and_then(Value::as_u64) {
            o.metric(name, "gauge", help, labels, v as f64);
        }
    }
}

fn b(v: Option<&Value>) -> f64 {
    if v.and_then(Value::as_bool).unwrap_or(false) {
        1.0
    } else {
        0.0
    }
}

/// The metrics text.
pub fn text(app: &App) -> String {
    let mut o = Out {
        text: String::new(),
        declared: Vec::new(),
    };
    let dir = &app.paths.status_dir;
    let pulse = state::read_status(&dir.join("pulse.json"));
    let lvsd = state::read_status(&dir.join("lvsd.json"));
    let live = |v: &Option<Value>| v.as_ref().is_some_and(|v| v["stale"] == Value::Bool(false));
    o.metric(
        "piranha_pulse_up",
        "gauge",
        "pulse is running and publishing its status",
        "",
        if live(&pulse) { 1.0 } else { 0.0 },
    );
    if let Some(p) = pulse.as_ref().filter(|_| live(&pulse)) {
        let role = p["role"].as_str().unwrap_or("");
        o.metric(
            "piranha_pulse_active",
            "gauge",
            "1 when this router is the active LVS router",
            &format!("role=\"{}\"", lv(role)),
            if p["state"] == "active" { 1.0 } else { 0.0 },
        );
        o.metric(
            "piranha_pulse_partner_seen",
            "gauge",
            "1 when the partner's heartbeat is heard",
            "",
            b(p.get("partner_seen")),
        );
        o.metric(
            "piranha_pulse_link_failure",
            "gauge",
            "1 when monitor_links sees a local link down",
            "",
            b(p.get("link_failure")),
        );
        if let Some(n) = p["failovers"].as_u64() {
            o.metric(
                "piranha_pulse_failovers_total",
                "counter",
                "Changes between active and standby since pulse started",
                "",
                n as f64,
            );
        }
        if let Some(n) = p["since"].as_u64() {
            o.metric(
                "piranha_pulse_state_since_seconds",
                "gauge",
                "Unix time of the last change of state",
                "",
                n as f64,
            );
        }
    }
    o.metric(
        "piranha_lvsd_up",
        "gauge",
        "lvsd is running and publishing its status",
        "",
        if live(&lvsd) { 1.0 } else { 0.0 },
    );
    if let Some(l) = lvsd.as_ref().filter(|_| live(&lvsd)) {
        for vs in l["virtual_servers"].as_array().into_iter().flatten() {
            let vname = vs["name"].as_str().unwrap_or("");
            let service = vs["service"].as_str().unwrap_or("");
            let vl = format!("virtual=\"{}\",service=\"{}\"", lv(vname), lv(service));
            if vs["active"] != Value::Bool(true) {
                continue;
            }
            o.metric(
                "piranha_sorry_server_on",
                "gauge",
                "1 when the sorry server replaces the real servers",
                &vl,
                b(vs.get("sorry_server_on")),
            );
            if let Some(s) = vs["ipvs"].get("stats") {
                stats(&mut o, &vl, s);
            }
            for rs in vs["real_servers"].as_array().into_iter().flatten() {
                if rs["active"] != Value::Bool(true) {
                    continue;
                }
                let addr = format!(
                    "{}:{}",
                    rs["address"].as_str().unwrap_or(""),
                    rs["port"].as_u64().unwrap_or(0)
                );
                let rl = format!(
                    "{vl},server=\"{}\",destination=\"{}\"",
                    lv(rs["name"].as_str().unwrap_or("")),
                    lv(&addr)
                );
                let health = rs["health"].as_str().unwrap_or("unknown");
                o.metric(
                    "piranha_real_server_up",
                    "gauge",
                    "1 when the real server passes its checks (quiesced counts as down)",
                    &rl,
                    if health == "up" { 1.0 } else { 0.0 },
                );
                o.metric(
                    "piranha_real_server_configured_weight",
                    "gauge",
                    "Weight in lvs.cf",
                    &rl,
                    rs["configured_weight"].as_f64().unwrap_or(0.0),
                );
                if let Some(w) = rs["weight"].as_f64() {
                    o.metric(
                        "piranha_real_server_weight",
                        "gauge",
                        "Weight lvsd gives the real server now",
                        &rl,
                        w,
                    );
                }
                if let Some(ipvs) = rs.get("ipvs").filter(|v| !v.is_null()) {
                    o.metric(
                        "piranha_ipvs_active_connections",
                        "gauge",
                        "Active connections of the destination",
                        &rl,
                        ipvs["active_conns"].as_f64().unwrap_or(0.0),
                    );
                    o.metric(
                        "piranha_ipvs_inactive_connections",
                        "gauge",
                        "Inactive connections of the destination",
                        &rl,
                        ipvs["inactive_conns"].as_f64().unwrap_or(0.0),
                    );
                    if let Some(s) = ipvs.get("stats") {
                        stats(&mut o, &rl, s);
                    }
                }
            }
        }
    }
    if let Ok(c) = app.store.read() {
        o.metric(
            "piranha_config_serial_no",
            "gauge",
            "serial_no of lvs.cf",
            "",
            c.config.serial_no as f64,
        );
        let errors = c.diagnostics.iter().filter(|d| d.is_error()).count();
        o.metric(
            "piranha_config_errors",
            "gauge",
            "Validation errors in lvs.cf",
            "",
            errors as f64,
        );
    }
    o.text
}

pub fn render(app: &App) -> Response {
    Response::new(200, "text/plain; version=0.0.4; charset=utf-8", text(app))
}
