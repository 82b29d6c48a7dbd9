//! The pages: server-rendered HTML, one form per panel section. Forms are sent by `app.js` to the
//! JSON API (the pages are a client of it); errors come back per field and are shown beside it.

use crate::edit::LOAD_MONITORS;
use crate::store::{Current, ReadError};
use lvs_config::{Config, RealServer, VirtualServer};
use std::fmt::Write;
use std::path::Path;

pub const APP_JS: &str = include_str!("../assets/app.js");
pub const STYLE_CSS: &str = include_str!("../assets/style.css");
pub const LOGIN_CSS: &str = include_str!("../assets/login.css");

/// What every page needs.
pub struct Ctx<'a> {
    pub csrf: &'a str,
    pub current: &'a Result<Current, ReadError>,
    pub path: &'a Path,
    pub tls: bool,
}

/// HTML-escapes text (also for attribute values).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const TABS: &[(&str, &str)] = &[
    ("control", "CONTROL/MONITORING"),
    ("global", "GLOBAL SETTINGS"),
    ("redundancy", "REDUNDANCY"),
    ("virtual", "VIRTUAL SERVERS"),
];

fn layout(ctx: &Ctx, tab: &str, title: &str, body: &str) -> String {
    let mut nav = String::new();
    for (id, label) in TABS {
        let _ = write!(
            nav,
            "<a href=\"/{id}\"{}>{label}</a>",
            if *id == tab { " class=\"on\"" } else { "" }
        );
    }
    let serial = match ctx.current {
        Ok(c) => c.config.serial_no.to_string(),
        Err(_) => String::new(),
    };
    let problem = match ctx.current {
        Err(e) => format!("<div class=\"banner error\">{}</div>", esc(&e.to_string())),
        Ok(c) if c.missing => format!(
            "<div class=\"banner\">{} does not exist yet: it is created when you save.</div>",
            esc(&ctx.path.display().to_string())
        ),
        Ok(c) => {
            let errors: Vec<String> = crate::edit::describe_all(&c.config, &c.diagnostics).0;
            if errors.is_empty() {
                String::new()
            } else {
                let items: String = errors
                    .iter()
                    .map(|e| format!("<li>{}</li>", esc(e)))
                    .collect();
                format!(
                    "<div class=\"banner error\">The configuration on disk has errors:<ul>{items}</ul></div>"
                )
            }
        }
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"csrf-token\" content=\"{csrf}\"><meta name=\"serial-no\" content=\"{serial}\">\
<title>{title} - Piranha</title><link rel=\"stylesheet\" href=\"/static/style.css\">\
<script src=\"/static/app.js\" defer></script></head><body>\
<header><h1>PIRANHA <span>LVS configuration and monitoring</span></h1>\
<form method=\"post\" action=\"/logout\" class=\"logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\">LOGOUT</button></form></header>\
<nav>{nav}<a href=\"/config\" class=\"{cfg}\">VIEW lvs.cf</a></nav>\
<main><h2>{title}</h2>{problem}<div id=\"flash\" role=\"status\"></div>{body}</main>\
<footer>lvs.cf: {path} &middot; serial_no <span id=\"serial\">{serial}</span></footer></body></html>\n",
        csrf = esc(ctx.csrf),
        title = esc(title),
        cfg = if tab == "config" { "on" } else { "" },
        path = esc(&ctx.path.display().to_string()),
    )
}

fn config<'a>(ctx: &'a Ctx) -> Option<&'a Config> {
    ctx.current.as_ref().ok().map(|c| &c.config)
}

fn input(label: &str, name: &str, value: &str, help: &str) -> String {
    format!(
        "<div class=\"field\"><label for=\"f-{name}\">{label}</label>\
<input id=\"f-{name}\" name=\"{name}\" value=\"{v}\" autocomplete=\"off\">\
<span class=\"err\" data-err=\"{name}\"></span>{h}</div>",
        label = esc(label),
        v = esc(value),
        h = if help.is_empty() {
            String::new()
        } else {
            format!("<small>{}</small>", esc(help))
        }
    )
}

fn select(label: &str, name: &str, value: &str, options: &[(&str, &str)]) -> String {
    let mut o = String::new();
    for (v, text) in options {
        let _ = write!(
            o,
            "<option value=\"{}\"{}>{}</option>",
            esc(v),
            if *v == value { " selected" } else { "" },
            esc(text)
        );
    }
    format!(
        "<div class=\"field\"><label for=\"f-{name}\">{label}</label>\
<select id=\"f-{name}\" name=\"{name}\">{o}</select>\
<span class=\"err\" data-err=\"{name}\"></span></div>",
        label = esc(label)
    )
}

fn checkbox(label: &str, name: &str, on: bool) -> String {
    format!(
        "<div class=\"field check\"><label><input type=\"checkbox\" id=\"f-{name}\" name=\"{name}\" value=\"1\"{}> {label}</label>\
<span class=\"err\" data-err=\"{name}\"></span></div>",
        if on { " checked" } else { "" },
        label = esc(label)
    )
}

fn form(method: &str, url: &str, next: &str, fields: &str, submit: &str) -> String {
    format!(
        "<form class=\"api\" data-method=\"{method}\" data-url=\"{url}\" data-next=\"{next}\" novalidate>\
{fields}<div class=\"general\" role=\"alert\"></div><div class=\"buttons\"><button type=\"submit\">{submit}</button></div></form>",
        url = esc(url),
        next = esc(next),
        submit = esc(submit)
    )
}

fn opt_host(h: &Option<lvs_config::Host>) -> String {
    h.as_ref().map(|h| h.name.clone()).unwrap_or_default()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

fn seconds(d: std::time::Duration) -> String {
    lvs_config::writer::format_seconds(d)
}

fn unusable(ctx: &Ctx, tab: &str, title: &str) -> (u16, String) {
    (
        409,
        layout(
            ctx,
            tab,
            title,
            "<p>The configuration file cannot be edited until it parses.</p>",
        ),
    )
}

// ---------------------------------------------------------------------- login

pub fn login(token: &str, message: Option<&str>) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Piranha login</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<link rel=\"stylesheet\" href=\"/static/login.css\"></head><body><main>\
<h1>PIRANHA</h1><p>LVS cluster configuration and monitoring</p>{msg}\
<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
<label for=\"password\">Password for user piranha</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" autofocus required>\
<button type=\"submit\" id=\"login\">LOGIN</button></form>\
<p class=\"hint\">The password is set on the router with <code>piranha-passwd</code>.</p>\
</main></body></html>\n",
        msg = message
            .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(m)))
            .unwrap_or_default(),
        token = esc(token)
    )
}

// ------------------------------------------------------------------- control

pub fn control(ctx: &Ctx) -> (u16, String) {
    let body = "<section class=\"controls\">\
<label><input type=\"checkbox\" id=\"auto\" checked> Auto update</label> \
<label>Update frequency in seconds <input id=\"interval\" type=\"number\" min=\"1\" max=\"3600\" value=\"2\"></label> \
<button type=\"button\" id=\"refresh\">Update information now</button> \
<button type=\"button\" class=\"act\" data-method=\"POST\" data-url=\"/api/apply\" \
data-confirm=\"Reload the running suite with the saved configuration?\">APPLY (reload pulse/lvsd)</button>\
<span id=\"updated\"></span> \
<a class=\"help\" href=\"#change-password\" title=\"The password is changed on the router, as root: \
piranha-passwd (it asks for the new password twice, or reads it with --stdin)\">CHANGE PASSWORD</a>\
<p id=\"change-password\" class=\"hint\">To change the GUI's password, run <code>piranha-passwd</code> \
as root on the router (the GUI itself cannot: it runs unprivileged and never writes its password file).</p>\
</section>\
<section><h3>Pulse on this router</h3><div id=\"pulse\">loading&hellip;</div></section>\
<section><h3>Virtual and real servers</h3><div id=\"servers\">loading&hellip;</div></section>\
<section><h3>Connections and rates</h3><div id=\"charts\" class=\"charts\"></div></section>\
<section><h3>LVS routing table</h3><div id=\"ipvs\">loading&hellip;</div></section>\
<section><h3>LVS processes</h3><div id=\"procs\">loading&hellip;</div></section>";
    (200, layout(ctx, "control", "CONTROL/MONITORING", body))
}

// -------------------------------------------------------------------- global

pub fn global(ctx: &Ctx) -> (u16, String) {
    let Some(c) = config(ctx) else {
        return unusable(ctx, "global", "GLOBAL SETTINGS");
    };
    let (nat_ip, nat_dev) = match &c.nat_router {
        Some(n) => (n.address.name.clone(), n.device.clone()),
        None => (String::new(), String::new()),
    };
    let mut f = String::new();
    f.push_str("<fieldset><legend>Environment</legend>");
    f.push_str(&input(
        "Primary server public IP",
        "primary",
        &opt_host(&c.primary),
        "",
    ));
    f.push_str(&input(
        "Primary server private IP",
        "primary_private",
        &opt_host(&c.primary_private),
        "optional second heartbeat path",
    ));
    f.push_str(&select(
        "Use network type",
        "network",
        c.network.keyword(),
        &[
            ("nat", "NAT"),
            ("direct", "Direct Routing"),
            ("tunnel", "Tunneling"),
        ],
    ));
    f.push_str(&input(
        "NAT Router IP",
        "nat_router_ip",
        &nat_ip,
        "floating gateway of the real servers (NAT)",
    ));
    f.push_str(&input(
        "NAT Router netmask",
        "nat_nmask",
        &opt(&c.nat_nmask),
        "e.g. 255.255.255.0",
    ));
    f.push_str(&input(
        "NAT Router device",
        "nat_router_device",
        &nat_dev,
        "e.g. eth1:1",
    ));
    f.push_str("</fieldset><fieldset><legend>Advanced</legend>");
    f.push_str(&select(
        "Service",
        "service",
        c.service.keyword(),
        &[("lvs", "lvs"), ("fos", "fos (failover services)")],
    ));
    f.push_str(&input(
        "Command run on becoming active",
        "active_cmd",
        &opt(&c.active_cmd),
        "",
    ));
    f.push_str(&input(
        "Command run on becoming inactive",
        "inactive_cmd",
        &opt(&c.inactive_cmd),
        "",
    ));
    f.push_str(&input(
        "Remote shell for load monitoring",
        "rsh_command",
        &c.rsh_command,
        "rsh or ssh",
    ));
    f.push_str(&input(
        "IPVS TCP timeout (s)",
        "tcp_timeout",
        &c.tcp_timeout.to_string(),
        "0 = kernel default",
    ));
    f.push_str(&input(
        "IPVS TCP FIN timeout (s)",
        "tcpfin_timeout",
        &c.tcpfin_timeout.to_string(),
        "",
    ));
    f.push_str(&input(
        "IPVS UDP timeout (s)",
        "udp_timeout",
        &c.udp_timeout.to_string(),
        "",
    ));
    f.push_str(&checkbox(
        "Hard shutdown: stop lvsd when a monitor dies",
        "hard_shutdown",
        c.hard_shutdown,
    ));
    f.push_str(&input(
        "Debug level",
        "debug_level",
        &c.debug_level,
        "NONE (kept in lvs.cf for Piranha's tools)",
    ));
    f.push_str("</fieldset>");
    (
        200,
        layout(
            ctx,
            "global",
            "GLOBAL SETTINGS",
            &form("PUT", "/api/global", "/global", &f, "ACCEPT"),
        ),
    )
}

pub fn redundancy(ctx: &Ctx) -> (u16, String) {
    let Some(c) = config(ctx) else {
        return unusable(ctx, "redundancy", "REDUNDANCY");
    };
    let mut f = String::new();
    f.push_str(&checkbox(
        "Backup router enabled",
        "backup_active",
        c.backup_active,
    ));
    f.push_str(&input(
        "Redundant server public IP",
        "backup",
        &opt_host(&c.backup),
        "",
    ));
    f.push_str(&input(
        "Redundant server private IP",
        "backup_private",
        &opt_host(&c.backup_private),
        "optional",
    ));
    f.push_str(&input(
        "Heartbeat interval (seconds)",
        "keepalive",
        &seconds(c.keepalive),
        "",
    ));
    f.push_str(&input(
        "Assume dead after (seconds)",
        "deadtime",
        &seconds(c.deadtime),
        "",
    ));
    f.push_str(&input(
        "Heartbeat runs on port",
        "heartbeat_port",
        &c.heartbeat_port.to_string(),
        "default 539 if left blank",
    ));
    f.push_str(&checkbox(
        "Monitor NIC links for failures",
        "monitor_links",
        c.monitor_links != 0,
    ));
    f.push_str(&checkbox("Syncdaemon", "syncdaemon", c.syncdaemon));
    f.push_str(&input(
        "Syncdaemon interface",
        "syncd_iface",
        &c.syncd_iface,
        "",
    ));
    f.push_str(&input(
        "Syncdaemon id",
        "syncd_id",
        &c.syncd_id.to_string(),
        "0-255",
    ));
    f.push_str(&input(
        "Heartbeat key file",
        "heartbeat_key_file",
        &opt(&c.heartbeat_key_file),
        "optional: authenticated heartbeats (piranha-rs extension)",
    ));
    f.push_str("<input type=\"hidden\" name=\"heartbeat\" value=\"1\">");
    (
        200,
        layout(
            ctx,
            "redundancy",
            "REDUNDANCY",
            &form("PUT", "/api/global", "/redundancy", &f, "ACCEPT"),
        ),
    )
}

// ------------------------------------------------------------ virtual servers

fn act_button(method: &str, url: &str, label: &str, fields: &str, confirm: Option<&str>) -> String {
    format!(
        "<button type=\"button\" class=\"act\" data-method=\"{method}\" data-url=\"{}\" data-fields=\"{}\"{}>{}</button>",
        esc(url),
        esc(fields),
        confirm
            .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
            .unwrap_or_default(),
        esc(label)
    )
}

/// The last cell of a virtual or real server's row: EDIT (a link to `edit`), (DE)ACTIVATE and
/// DELETE (API requests to `api`; DELETE asks `confirm` first).
fn row_actions(edit: &str, api: &str, active: bool, confirm: &str) -> String {
    format!(
        "<td class=\"actions\"><a class=\"button\" href=\"{}\">EDIT</a>{}{}</td>",
        esc(edit),
        act_button(
            "PUT",
            api,
            if active { "DEACTIVATE" } else { "ACTIVATE" },
            &format!("{{\"active\":\"{}\"}}", if active { 0 } else { 1 }),
            None
        ),
        act_button("DELETE", api, "DELETE", "", Some(confirm))
    )
}

pub fn virtual_list(ctx: &Ctx) -> (u16, String) {
    let Some(c) = config(ctx) else {
        return unusable(ctx, "virtual", "VIRTUAL SERVERS");
    };
    let mut rows = String::new();
    for (i, vs) in c.virtual_servers.iter().enumerate() {
        let (vip, dev) = match &vs.address {
            Some(a) => (a.address.name.clone(), a.device.clone()),
            None => (String::new(), String::new()),
        };
        let _ = write!(
            rows,
            "<tr data-vs=\"{name}\"><td class=\"state-{st}\">{st}</td><td><a href=\"/virtual/{i}\">{name}</a></td>\
<td>{vip}</td><td>{mask}</td><td>{port}</td><td>{proto}</td><td>{dev}</td><td>{n}</td>{actions}</tr>",
            st = if vs.active { "up" } else { "down" },
            name = esc(&vs.name),
            vip = esc(&vip),
            mask = esc(&opt(&vs.vip_nmask)),
            port = vs.port,
            proto = vs.protocol.keyword(),
            dev = esc(&dev),
            n = vs.servers.len(),
            actions = row_actions(
                &format!("/virtual/{i}"),
                &format!("/api/virtual/{i}"),
                vs.active,
                &format!("Delete virtual server {}?", vs.name)
            ),
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"9\">No virtual servers yet.</td></tr>");
    }
    let body = format!(
        "<table class=\"list\" id=\"virtual-servers\"><thead><tr><th>STATUS</th><th>NAME</th><th>VIP</th><th>NETMASK</th>\
<th>PORT</th><th>PROTOCOL</th><th>DEVICE</th><th>REAL SERVERS</th><th></th></tr></thead><tbody>{rows}</tbody></table>\
<p><a class=\"button\" id=\"add-virtual\" href=\"/virtual/new\">ADD</a></p>"
    );
    (200, layout(ctx, "virtual", "VIRTUAL SERVERS", &body))
}

fn virtual_fields(vs: &VirtualServer) -> String {
    let (vip, dev) = match &vs.address {
        Some(a) => (a.address.name.clone(), a.device.clone()),
        None => (String::new(), String::new()),
    };
    let mut f = String::new();
    f.push_str(&input("Name", "name", &vs.name, ""));
    f.push_str(&input("Application port", "port", &vs.port.to_string(), ""));
    f.push_str(&select(
        "Protocol",
        "protocol",
        vs.protocol.keyword(),
        &[("tcp", "tcp"), ("udp", "udp")],
    ));
    f.push_str(&input("Virtual IP Address", "address", &vip, ""));
    f.push_str(&input(
        "Virtual IP Network Mask",
        "vip_nmask",
        &opt(&vs.vip_nmask),
        "e.g. 255.255.255.0",
    ));
    f.push_str(&input(
        "Sorry Server",
        "sorry_server",
        &opt(&vs.sorry_server),
        "used when every real server is down",
    ));
    f.push_str(&input(
        "Firewall Mark",
        "fwmark",
        &opt(&vs.fwmark),
        "optional",
    ));
    f.push_str(&input("Device", "device", &dev, "e.g. eth0:1"));
    f.push_str(&input(
        "Re-entry Time",
        "reentry",
        &vs.reentry.to_string(),
        "seconds a failed server must pass checks",
    ));
    f.push_str(&input(
        "Service Timeout",
        "timeout",
        &vs.timeout.to_string(),
        "seconds between checks (and per check)",
    ));
    f.push_str(&checkbox(
        "Quiesce server (weight 0 instead of removal on failure)",
        "quiesce_server",
        vs.quiesce_server,
    ));
    let lm = vs.load_monitor.clone().unwrap_or_else(|| "none".into());
    let mut lms: Vec<(&str, &str)> = LOAD_MONITORS.iter().map(|m| (*m, *m)).collect();
    if !LOAD_MONITORS.contains(&lm.as_str()) {
        lms.push((lm.as_str(), lm.as_str()));
    }
    f.push_str(&select("Load monitoring tool", "load_monitor", &lm, &lms));
    let scheds: Vec<(&str, &str)> = lvs_config::Scheduler::ALL
        .iter()
        .map(|s| (s.name(), s.name()))
        .collect();
    f.push_str(&select(
        "Scheduling",
        "scheduler",
        vs.scheduler.name(),
        &scheds,
    ));
    f.push_str(&input(
        "Persistence",
        "persistent",
        &vs.persistent.to_string(),
        "seconds, 0 = off",
    ));
    f.push_str(&input(
        "Persistence Network Mask",
        "pmask",
        &opt(&vs.pmask),
        "",
    ));
    f.push_str(&checkbox("Active", "active", vs.active));
    f
}

fn monitoring_fields(vs: &VirtualServer) -> String {
    let mut f = String::new();
    f.push_str(&input(
        "Sending Program",
        "send_program",
        &opt(&vs.send_program),
        "overrides Send; %h = real server IP, %p = port",
    ));
    f.push_str(&input(
        "Send",
        "send",
        &opt(&vs.send),
        "e.g. GET / HTTP/1.0\\r\\n\\r\\n; empty: connect only",
    ));
    f.push_str(&input("Expect", "expect", &opt(&vs.expect), ""));
    f.push_str(&checkbox(
        "Treat expect string as a regular expression",
        "use_regex",
        vs.use_regex,
    ));
    f
}

pub fn virtual_edit(ctx: &Ctx, index: Option<usize>) -> (u16, String) {
    let Some(c) = config(ctx) else {
        return unusable(ctx, "virtual", "VIRTUAL SERVER");
    };
    let Some(i) = index else {
        let mut vs = VirtualServer::new("");
        vs.timeout = 6;
        vs.reentry = 15;
        let body = form(
            "POST",
            "/api/virtual",
            "/virtual/{index}",
            &(virtual_fields(&vs) + &monitoring_fields(&vs)),
            "ACCEPT",
        );
        return (200, layout(ctx, "virtual", "ADD VIRTUAL SERVER", &body));
    };
    let Some(vs) = c.virtual_servers.get(i) else {
        return (
            404,
            layout(
                ctx,
                "virtual",
                "VIRTUAL SERVER",
                "<p>No such virtual server.</p>",
            ),
        );
    };
    let mut rows = String::new();
    for (j, rs) in vs.servers.iter().enumerate() {
        let _ = write!(
            rows,
            "<tr data-rs=\"{name}\"><td class=\"state-{st}\">{st}</td><td><a href=\"/virtual/{i}/server/{j}\">{name}</a></td>\
<td>{addr}</td><td>{port}</td><td>{w}</td>{actions}</tr>",
            st = if rs.active { "up" } else { "down" },
            name = esc(&rs.name),
            addr = esc(&opt_host(&rs.address)),
            port = rs.port,
            w = rs.weight,
            actions = row_actions(
                &format!("/virtual/{i}/server/{j}"),
                &format!("/api/virtual/{i}/servers/{j}"),
                rs.active,
                &format!("Delete real server {}?", rs.name)
            ),
        );
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"6\">No real servers yet.</td></tr>");
    }
    let body = format!(
        "<section><h3>VIRTUAL SERVER</h3>{}</section>\
<section><h3>REAL SERVER</h3><table class=\"list\" id=\"real-servers\"><thead><tr><th>STATUS</th><th>NAME</th>\
<th>ADDRESS</th><th>PORT</th><th>WEIGHT</th><th></th></tr></thead><tbody>{rows}</tbody></table>\
<p><a class=\"button\" id=\"add-real\" href=\"/virtual/{i}/server/new\">ADD</a></p></section>\
<section><h3>MONITORING SCRIPTS</h3>{}</section>",
        form("PUT", &format!("/api/virtual/{i}"), &format!("/virtual/{i}"), &virtual_fields(vs), "ACCEPT"),
        form("PUT", &format!("/api/virtual/{i}"), &format!("/virtual/{i}"), &monitoring_fields(vs), "ACCEPT"),
    );
    (
        200,
        layout(
            ctx,
            "virtual",
            &format!("VIRTUAL SERVER {}", vs.name),
            &body,
        ),
    )
}

fn server_fields(rs: &RealServer) -> String {
    let mut f = String::new();
    f.push_str(&input("Name", "name", &rs.name, ""));
    f.push_str(&input("Address", "address", &opt_host(&rs.address), ""));
    f.push_str(&input(
        "Port",
        "port",
        &rs.port.to_string(),
        "empty: the virtual server's port",
    ));
    f.push_str(&input("Weight", "weight", &rs.weight.to_string(), ""));
    f.push_str(&checkbox("Active", "active", rs.active));
    f
}

pub fn server_edit(ctx: &Ctx, i: usize, j: Option<usize>) -> (u16, String) {
    let Some(c) = config(ctx) else {
        return unusable(ctx, "virtual", "REAL SERVER");
    };
    let Some(vs) = c.virtual_servers.get(i) else {
        return (
            404,
            layout(
                ctx,
                "virtual",
                "REAL SERVER",
                "<p>No such virtual server.</p>",
            ),
        );
    };
    let back = format!(
        "<p><a href=\"/virtual/{i}\">&larr; virtual server {}</a></p>",
        esc(&vs.name)
    );
    match j {
        None => {
            let mut rs = RealServer::new("", vs.port);
            rs.active = true;
            let body = back
                + &form(
                    "POST",
                    &format!("/api/virtual/{i}/servers"),
                    &format!("/virtual/{i}"),
                    &server_fields(&rs),
                    "ACCEPT",
                );
            (
                200,
                layout(
                    ctx,
                    "virtual",
                    &format!("ADD REAL SERVER TO {}", vs.name),
                    &body,
                ),
            )
        }
        Some(j) => {
            let Some(rs) = vs.servers.get(j) else {
                return (
                    404,
                    layout(ctx, "virtual", "REAL SERVER", "<p>No such real server.</p>"),
                );
            };
            let body = back
                + &form(
                    "PUT",
                    &format!("/api/virtual/{i}/servers/{j}"),
                    &format!("/virtual/{i}"),
                    &server_fields(rs),
                    "ACCEPT",
                );
            (
                200,
                layout(ctx, "virtual", &format!("REAL SERVER {}", rs.name), &body),
            )
        }
    }
}

pub fn config_text(ctx: &Ctx) -> (u16, String) {
    let text = std::fs::read_to_string(ctx.path).unwrap_or_default();
    let body = format!(
        "<pre id=\"lvs-cf\">{}</pre><p>Previous version: {}.bak</p>",
        esc(&text),
        esc(&ctx.path.display().to_string())
    );
    (200, layout(ctx, "config", "lvs.cf", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn login_page_embeds_the_token_and_escapes_messages() {
        let p = login("abc123", Some("<b>bad</b>"));
        assert!(p.contains("value=\"abc123\""));
        assert!(p.contains("&lt;b&gt;bad&lt;/b&gt;"));
        assert!(!p.contains("<b>bad"));
    }
}
