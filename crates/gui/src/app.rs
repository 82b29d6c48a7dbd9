//! The application: authentication and CSRF in front of every route, the JSON API, the pages.

use crate::auth::{ct_eq, random_hex, verify_password, RateLimiter, Sessions};
use crate::edit::{self, FieldError, Target};
use crate::http::{Request, Response};
use crate::store::{SaveError, Saved, Store};
use crate::{forms, metrics, pages, state};
use lvs_config::Config;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "piranha_session";
/// Pre-login cookie holding the login form's CSRF token (double submit).
pub const LOGIN_COOKIE: &str = "piranha_login";
/// Header carrying the CSRF token on API requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub struct App {
    pub store: Store,
    pub paths: state::Paths,
    pub sessions: Sessions,
    pub limiter: RateLimiter,
    pub password_hash: String,
    /// Bearer token that may read /metrics (and nothing else).
    pub metrics_token: Option<String>,
    /// Serving over TLS: cookies get `Secure`.
    pub tls: bool,
}

/// The logged-in caller.
struct Caller {
    session_id: String,
    csrf: String,
}

fn json_error(status: u16, message: impl Into<String>) -> Response {
    Response::json(status, &json!({"ok": false, "error": message.into()}))
}

fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// An edit: the revision the client edited and the form's fields (strings only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    serial_no: Option<i64>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    serial_no: Option<i64>,
    config: Config,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    password: String,
}

impl App {
    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        if self.tls {
            c.push_str("; Secure");
        }
        c
    }

    /// The origin this server is reached at, from the Host header.
    fn expected_origin(&self, req: &Request) -> Option<String> {
        let host = req.header("host")?;
        if host.is_empty() || host.contains([' ', '/', '\\', ',']) {
            return None;
        }
        Some(format!(
            "{}://{host}",
            if self.tls { "https" } else { "http" }
        ))
    }

    /// A state-changing request must come from our own pages (or a non-browser client): an
    /// `Origin` (or else `Referer`) naming another site is refused, and so is a browser's
    /// `Sec-Fetch-Site: cross-site`.
    fn origin_ok(&self, req: &Request) -> bool {
        let Some(expected) = self.expected_origin(req) else {
            return false;
        };
        if let Some(o) = req.header("origin") {
            return o == expected;
        }
        if let Some(r) = req.header("referer") {
            return r == expected || r.starts_with(&format!("{expected}/"));
        }
        !matches!(
            req.header("sec-fetch-site"),
            Some("cross-site" | "same-site")
        )
    }

    fn caller(&self, req: &Request) -> Option<Caller> {
        let id = req.cookie(SESSION_COOKIE)?;
        let s = self.sessions.get(id)?;
        Some(Caller {
            session_id: id.to_string(),
            csrf: s.csrf,
        })
    }

    fn metrics_bearer_ok(&self, req: &Request) -> bool {
        let (Some(token), Some(h)) = (&self.metrics_token, req.header("authorization")) else {
            return false;
        };
        match h.strip_prefix("Bearer ") {
            Some(given) => ct_eq(given.trim(), token),
            None => false,
        }
    }

    /// Answers one request.
    pub fn handle(&self, req: &Request) -> Response {
        let resp = self.route(req);
        if resp.status >= 400 && resp.status != 401 && resp.status != 422 {
            log::debug!("{} {} -> {}", req.method, req.path, resp.status);
        }
        resp
    }

    fn route(&self, req: &Request) -> Response {
        let m = req.method.as_str();
        let p = req.path.as_str();
        // The only routes open without a session: the login page, its stylesheet, logging in.
        match (m, p) {
            ("GET" | "HEAD", "/login") => return self.login_page(req, None, 200),
            ("POST", "/login") => return self.login_form(req),
            ("POST", "/api/login") => return self.login_api(req),
            ("GET" | "HEAD", "/static/login.css") => {
                return Response::new(200, "text/css; charset=utf-8", pages::LOGIN_CSS)
            }
            _ => {}
        }
        if p == "/metrics" && is_safe(m) && self.metrics_bearer_ok(req) {
            return metrics::render(self);
        }
        let Some(caller) = self.caller(req) else {
            // Browsers navigating to a page go to the login page; anything else (scripts, the
            // favicon, assets) gets 401.
            let wants_page = is_safe(m)
                && !p.starts_with("/api/")
                && p != "/metrics"
                && req
                    .header("accept")
                    .is_some_and(|a| a.contains("text/html"));
            return if wants_page {
                Response::redirect("/login")
            } else {
                json_error(401, "authentication required: log in first")
                    .with_header("WWW-Authenticate", "Cookie realm=\"piranha\"")
            };
        };
        if !is_safe(m) {
            if !self.origin_ok(req) {
                return json_error(403, "cross-origin request refused");
            }
            let token = match req.header(CSRF_HEADER) {
                Some(t) => Some(t.to_string()),
                None if p == "/logout" => forms::parse(&req.body)
                    .ok()
                    .and_then(|f| f.get("csrf").cloned()),
                None => None,
            };
            if !token.is_some_and(|t| ct_eq(&t, &caller.csrf)) {
                return json_error(403, "missing or wrong CSRF token");
            }
        }
        self.route_authenticated(req, &caller)
    }

    fn route_authenticated(&self, req: &Request, caller: &Caller) -> Response {
        let m = req.method.as_str();
        let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
        let get = is_safe(m);
        let idx = |s: &str| -> Option<usize> {
            if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        match (segs.as_slice(), get) {
            ([], true) => Response::redirect("/control"),
            (["control"], true) => self.page(caller, pages::control),
            (["global"], true) => self.page(caller, pages::global),
            (["redundancy"], true) => self.page(caller, pages::redundancy),
            (["virtual"], true) => self.page(caller, pages::virtual_list),
            (["virtual", "new"], true) => self.page(caller, |c| pages::virtual_edit(c, None)),
            (["virtual", i], true) => match idx(i) {
                Some(i) => self.page(caller, |c| pages::virtual_edit(c, Some(i))),
                None => not_found(),
            },
            (["virtual", i, "server", "new"], true) => match idx(i) {
                Some(i) => self.page(caller, |c| pages::server_edit(c, i, None)),
                None => not_found(),
            },
            (["virtual", i, "server", j], true) => match (idx(i), idx(j)) {
                (Some(i), Some(j)) => self.page(caller, |c| pages::server_edit(c, i, Some(j))),
                _ => not_found(),
            },
            (["config"], true) => self.page(caller, pages::config_text),
            (["static", "app.js"], true) => {
                Response::new(200, "text/javascript; charset=utf-8", pages::APP_JS)
            }
            (["static", "style.css"], true) => {
                Response::new(200, "text/css; charset=utf-8", pages::STYLE_CSS)
            }
            (["metrics"], true) => metrics::render(self),
            (["logout"], false) if m == "POST" => {
                self.sessions.remove(&caller.session_id);
                Response::redirect("/login")
                    .with_header("Set-Cookie", self.cookie(SESSION_COOKIE, "", Some(0)))
            }
            (["api", rest @ ..], _) => self.api(req, caller, rest),
            _ => {
                if get || matches!(m, "POST" | "PUT" | "DELETE") {
                    not_found()
                } else {
                    json_error(405, "method not allowed")
                }
            }
        }
    }

    fn page(&self, caller: &Caller, f: impl FnOnce(&pages::Ctx) -> (u16, String)) -> Response {
        let current = self.store.read();
        let ctx = pages::Ctx {
            csrf: &caller.csrf,
            current: &current,
            path: self.store.path(),
            tls: self.tls,
        };
        let (status, body) = f(&ctx);
        Response::html(status, body)
    }

    // ------------------------------------------------------------------ login

    fn login_page(&self, req: &Request, message: Option<&str>, status: u16) -> Response {
        // One login token per browser: kept while its cookie lives (another tab, or a request
        // the browser makes on its own, must not invalidate the form shown).
        let existing = req
            .cookie(LOGIN_COOKIE)
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string);
        let token = match existing.map_or_else(|| random_hex(32), Ok) {
            Ok(t) => t,
            Err(e) => return Response::text(500, e),
        };
        Response::html(status, pages::login(&token, message))
            .with_header("Set-Cookie", self.cookie(LOGIN_COOKIE, &token, Some(3600)))
    }

    /// Rate limit, then password check. `Ok(())` when the password is right.
    fn check_password(&self, req: &Request, password: &str) -> Result<(), Response> {
        let now = Instant::now();
        if let Err(retry) = self.limiter.check(req.peer, now) {
            log::warn!("login from {} refused: too many failed attempts", req.peer);
            let secs = retry.as_secs().max(1);
            return Err(Response::json(
                429,
                &json!({"ok": false, "error": format!("too many failed logins; try again in {secs} s")}),
            )
            .with_header("Retry-After", secs.to_string()));
        }
        if verify_password(password, &self.password_hash) {
            log::info!("login from {}", req.peer);
            Ok(())
        } else {
            self.limiter.failed(req.peer, now);
            log::warn!("failed login from {}", req.peer);
            Err(json_error(401, "wrong password"))
        }
    }

    fn login_form(&self, req: &Request) -> Response {
        if !self.origin_ok(req) {
            return self.login_page(req, Some("Cross-origin login refused."), 403);
        }
        if let Err(retry) = self.limiter.check(req.peer, Instant::now()) {
            return self
                .login_page(req, Some("Too many failed logins; wait a minute."), 429)
                .with_header("Retry-After", retry.as_secs().max(1).to_string());
        }
        let form = match forms::parse(&req.body) {
            Ok(f) => f,
            Err(e) => return self.login_page(req, Some(&e), 400),
        };
        let token_ok = match (form.get("csrf"), req.cookie(LOGIN_COOKIE)) {
            (Some(a), Some(b)) => !a.is_empty() && ct_eq(a, b),
            _ => false,
        };
        if !token_ok {
            return self.login_page(
                req,
                Some("The login form expired (or cookies are off); try again."),
                403,
            );
        }
        let password = form.get("password").map(String::as_str).unwrap_or("");
        match self.check_password(req, password) {
            Ok(()) => match self.sessions.create() {
                Ok((id, _)) => Response::redirect("/control")
                    .with_header("Set-Cookie", self.cookie(SESSION_COOKIE, &id, None))
                    .with_header("Set-Cookie", self.cookie(LOGIN_COOKIE, "", Some(0))),
                Err(e) => Response::text(500, e),
            },
            Err(r) if r.status == 429 => self
                .login_page(req, Some("Too many failed logins; wait a minute."), 429)
                .with_header("Retry-After", "60"),
            Err(_) => self.login_page(req, Some("Wrong password."), 401),
        }
    }

    /// JSON login for scripts: `{"password": "..."}` with `Content-Type: application/json`
    /// (which a cross-site form cannot send) and a same-origin `Origin` if any.
    fn login_api(&self, req: &Request) -> Response {
        if !self.origin_ok(req) {
            return json_error(403, "cross-origin request refused");
        }
        let body: LoginBody = match self.json_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = self.check_password(req, &body.password) {
            return r;
        }
        match self.sessions.create() {
            Ok((id, csrf)) => Response::json(200, &json!({"ok": true, "csrf_token": csrf}))
                .with_header("Set-Cookie", self.cookie(SESSION_COOKIE, &id, None)),
            Err(e) => json_error(500, e),
        }
    }

    // ------------------------------------------------------------------ API

    fn json_body<T: serde::de::DeserializeOwned>(&self, req: &Request) -> Result<T, Response> {
        let ct = req.header("content-type").unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(json_error(415, "the body must be application/json"));
        }
        serde_json::from_slice(&req.body)
            .map_err(|e| json_error(400, format!("malformed request body: {e}")))
    }

    fn api(&self, req: &Request, caller: &Caller, rest: &[&str]) -> Response {
        let m = req.method.as_str();
        let idx = |s: &str| -> Option<usize> {
            if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        match (rest, m) {
            (["session"], "GET" | "HEAD") => {
                Response::json(200, &json!({"ok": true, "csrf_token": caller.csrf}))
            }
            (["status"], "GET" | "HEAD") => self.api_status(),
            (["config"], "GET" | "HEAD") => self.api_config(),
            (["config"], "PUT") => self.api_put_config(req),
            (["config", "validate"], "POST") => self.api_validate(req),
            (["apply"], "POST") => self.api_apply(),
            (["global"], "PUT") => self.edit(req, Target::Global),
            (["virtual"], "POST") => self.edit(req, Target::Virtual(None)),
            (["virtual", i], "PUT") => match idx(i) {
                Some(i) => self.edit(req, Target::Virtual(Some(i))),
                None => not_found(),
            },
            (["virtual", i], "DELETE") => match idx(i) {
                Some(i) => self.delete(req, i, None),
                None => not_found(),
            },
            (["virtual", i, "servers"], "POST") => match idx(i) {
                Some(i) => self.edit(req, Target::Server(i, None)),
                None => not_found(),
            },
            (["virtual", i, "servers", j], "PUT") => match (idx(i), idx(j)) {
                (Some(i), Some(j)) => self.edit(req, Target::Server(i, Some(j))),
                _ => not_found(),
            },
            (["virtual", i, "servers", j], "DELETE") => match (idx(i), idx(j)) {
                (Some(i), Some(j)) => self.delete(req, i, Some(j)),
                _ => not_found(),
            },
            (
                ["session"]
                | ["status"]
                | ["config"]
                | ["config", "validate"]
                | ["apply"]
                | ["global"]
                | ["virtual"]
                | ["virtual", _]
                | ["virtual", _, "servers"]
                | ["virtual", _, "servers", _],
                _,
            ) => json_error(405, "method not allowed"),
            _ => not_found(),
        }
    }

    fn api_status(&self) -> Response {
        let mut v = state::status(&self.paths);
        let (serial, error) = match self.store.read() {
            Ok(c) => (Some(c.config.serial_no), None),
            Err(e) => (None, Some(e.to_string())),
        };
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "config".into(),
                json!({"path": self.store.path().display().to_string(), "serial_no": serial, "error": error}),
            );
        }
        Response::json(200, &v)
    }

    fn api_config(&self) -> Response {
        match self.store.read() {
            Ok(c) => Response::json(
                200,
                &json!({
                    "ok": true,
                    "path": self.store.path().display().to_string(),
                    "missing": c.missing,
                    "serial_no": c.config.serial_no,
                    "config": c.config,
                    "diagnostics": c.diagnostics,
                    "text": self.store.text().unwrap_or_default(),
                }),
            ),
            Err(e) => json_error(409, e.to_string()),
        }
    }

    fn api_validate(&self, req: &Request) -> Response {
        let body: ConfigBody = match self.json_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let (errors, warnings) = self.store.check(&body.config);
        let text = lvs_config::to_string(&body.config);
        Response::json(
            200,
            &json!({
                "ok": errors.is_empty() && text.is_ok(),
                "errors": errors,
                "warnings": warnings,
                "text": text.as_ref().ok(),
                "unrepresentable": text.err().map(|e| e.to_string()),
            }),
        )
    }

    fn api_put_config(&self, req: &Request) -> Response {
        let body: ConfigBody = match self.json_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let new = body.config;
        let r = self.store.modify(
            body.serial_no,
            move |c, _| {
                let serial = c.serial_no;
                *c = new;
                c.serial_no = serial;
                Ok(())
            },
            |c, _, diags| {
                let (general, warnings) = edit::describe_all(c, diags);
                (Vec::new(), general, warnings)
            },
        );
        self.saved(r, |_| json!({}))
    }

    fn edit(&self, req: &Request, target: Target) -> Response {
        let body: EditBody = match self.json_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let fields = body.fields;
        let r = self.store.modify(
            body.serial_no,
            |c, resolver| edit::apply(c, target, &fields, resolver),
            |c, at, diags| edit::map_diagnostics(c, target, *at, diags),
        );
        self.saved(r, |(i, j)| match target {
            Target::Global => json!({}),
            Target::Virtual(_) => json!({"index": i}),
            Target::Server(..) => json!({"index": i, "server": j}),
        })
    }

    fn delete(&self, req: &Request, vi: usize, server: Option<usize>) -> Response {
        let serial = if req.body.is_empty() {
            None
        } else {
            match self.json_body::<EditBody>(req) {
                Ok(b) => b.serial_no,
                Err(r) => return r,
            }
        };
        let r = self.store.modify(
            serial,
            |c, _| {
                let Some(vs) = c.virtual_servers.get_mut(vi) else {
                    return Err(vec![FieldError::new("", "no such virtual server")]);
                };
                match server {
                    None => {
                        c.virtual_servers.remove(vi);
                    }
                    Some(j) if j < vs.servers.len() => {
                        Arc::make_mut(vs).servers.remove(j);
                    }
                    Some(_) => return Err(vec![FieldError::new("", "no such real server")]),
                }
                Ok(())
            },
            |c, _, diags| {
                let (general, warnings) = edit::describe_all(c, diags);
                (Vec::new(), general, warnings)
            },
        );
        self.saved(r, |_| json!({}))
    }

    fn saved<T>(
        &self,
        r: Result<Saved<T>, SaveError>,
        extra: impl FnOnce(&T) -> Value,
    ) -> Response {
        match r {
            Ok(s) => {
                let mut v = json!({"ok": true, "serial_no": s.serial_no, "warnings": s.warnings});
                if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra(&s.value)) {
                    o.extend(e);
                }
                Response::json(200, &v)
            }
            Err(SaveError::Invalid {
                fields,
                general,
                warnings,
            }) => Response::json(
                422,
                &json!({"ok": false, "error": "invalid values; nothing was written",
                        "errors": fields, "general": general, "warnings": warnings}),
            ),
            Err(SaveError::Conflict { expected, actual }) => Response::json(
                409,
                &json!({"ok": false, "error": format!(
                    "the configuration changed meanwhile (you edited serial_no {expected}, it is now {actual}); reload and redo your change"),
                    "serial_no": actual}),
            ),
            Err(SaveError::Read(e)) => json_error(409, e.to_string()),
            Err(SaveError::Write(e)) => {
                log::error!("{e}");
                json_error(500, e)
            }
        }
    }

    fn api_apply(&self) -> Response {
        match self.store.read() {
            Ok(c) if c.diagnostics.iter().any(|d| d.is_error()) => {
                return json_error(
                    409,
                    "the configuration has errors; fix them before applying",
                )
            }
            Ok(c) if c.missing => {
                return json_error(409, "there is no configuration file yet; save one first")
            }
            Ok(_) => {}
            Err(e) => return json_error(409, e.to_string()),
        }
        match state::apply(&self.paths) {
            state::Applied::Signalled(program, pid) => Response::json(
                200,
                &json!({"ok": true, "signalled": program, "pid": pid,
                        "message": format!("sent SIGHUP to {program} (pid {pid}): the configuration is being reloaded")}),
            ),
            state::Applied::NothingRunning(m) => Response::json(
                409,
                &json!({"ok": false, "nothing_running": true, "error": m}),
            ),
            state::Applied::Failed(m) => json_error(500, m),
        }
    }
}

fn not_found() -> Response {
    json_error(404, "not found")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{hash_password, RatePolicy, SessionPolicy};
    use lvs_config::StaticResolver;

    struct T {
        app: App,
        dir: tempfile::TempDir,
    }

    fn setup() -> T {
        let dir = tempfile::tempdir().unwrap();
        let app = App {
            store: Store::new(
                dir.path().join("lvs.cf"),
                Box::new(StaticResolver::standard()),
            ),
            paths: state::Paths {
                status_dir: dir.path().join("status"),
                proc_root: "/proc".into(),
                pulse_pidfile: dir.path().join("pulse.pid"),
                lvsd_pidfile: dir.path().join("lvs.pid"),
            },
            sessions: Sessions::new(SessionPolicy::default()),
            limiter: RateLimiter::new(RatePolicy::default()),
            password_hash: hash_password("pw for tests").unwrap(),
            metrics_token: Some("m".repeat(20)),
            tls: false,
        };
        T { app, dir }
    }

    fn req(method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Request {
        let mut r = Request::new(method, path);
        r.body = body.as_bytes().to_vec();
        r.headers.insert("host".into(), "127.0.0.1:3636".into());
        if !body.is_empty() {
            r.headers
                .insert("content-type".into(), "application/json".into());
        }
        for (k, v) in headers {
            r.headers.insert(k.to_string(), v.to_string());
        }
        r
    }

    fn login(t: &T) -> (String, String) {
        let r = t.app.handle(&req(
            "POST",
            "/api/login",
            r#"{"password":"pw for tests"}"#,
            &[],
        ));
        assert_eq!(r.status, 200, "{}", r.body_text());
        let cookie = r
            .headers
            .iter()
            .find(|(k, _)| k == "Set-Cookie")
            .map(|(_, v)| v.split(';').next().unwrap().to_string())
            .unwrap();
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        (cookie, v["csrf_token"].as_str().unwrap().to_string())
    }

    #[test]
    fn everything_needs_a_session() {
        let t = setup();
        for (m, p) in [
            ("GET", "/api/config"),
            ("GET", "/api/status"),
            ("PUT", "/api/global"),
            ("DELETE", "/api/virtual/0"),
            ("POST", "/api/apply"),
            ("GET", "/metrics"),
            ("GET", "/static/app.js"),
            ("PATCH", "/whatever"),
        ] {
            assert_eq!(t.app.handle(&req(m, p, "", &[])).status, 401, "{m} {p}");
        }
        let page = t
            .app
            .handle(&req("GET", "/control", "", &[("accept", "text/html")]));
        assert_eq!(page.status, 303);
        let m = t.app.handle(&req(
            "GET",
            "/metrics",
            "",
            &[("authorization", &format!("Bearer {}", "m".repeat(20)))],
        ));
        assert_eq!(m.status, 200);
        assert!(m.body_text().contains("piranha_pulse_up 0"));
        let wrong = t
            .app
            .handle(&req("POST", "/api/login", r#"{"password":"nope"}"#, &[]));
        assert_eq!(wrong.status, 401);
    }

    #[test]
    fn edits_need_csrf_and_valid_values() {
        let t = setup();
        let (cookie, csrf) = login(&t);
        let c = ("cookie", cookie.as_str());
        let body = r#"{"fields":{"name":"www","port":"80","address":"192.0.2.10","device":"eth0:1","active":"1"}}"#;
        assert_eq!(
            t.app
                .handle(&req("POST", "/api/virtual", body, &[c]))
                .status,
            403
        );
        assert_eq!(
            t.app
                .handle(&req(
                    "POST",
                    "/api/virtual",
                    body,
                    &[c, ("x-csrf-token", "bad")]
                ))
                .status,
            403
        );
        let ok = [c, ("x-csrf-token", csrf.as_str())];
        let bad = t.app.handle(&req(
            "POST",
            "/api/virtual",
            r#"{"fields":{"name":"www","port":"http"}}"#,
            &ok,
        ));
        assert_eq!(bad.status, 422);
        assert!(
            bad.body_text().contains("\"field\": \"port\""),
            "{}",
            bad.body_text()
        );
        assert!(!t.dir.path().join("lvs.cf").exists(), "nothing written");
        let r = t.app.handle(&req("POST", "/api/virtual", body, &ok));
        assert_eq!(r.status, 200, "{}", r.body_text());
        let r = t.app.handle(&req(
            "POST",
            "/api/virtual/0/servers",
            r#"{"serial_no":1,"fields":{"name":"a","address":"198.51.100.1","active":"1"}}"#,
            &ok,
        ));
        assert_eq!(r.status, 200, "{}", r.body_text());
        let stale = t.app.handle(&req(
            "PUT",
            "/api/virtual/0",
            r#"{"serial_no":1,"fields":{"port":"81"}}"#,
            &ok,
        ));
        assert_eq!(stale.status, 409);
        let text = std::fs::read_to_string(t.dir.path().join("lvs.cf")).unwrap();
        assert!(text.starts_with("serial_no = 2\n"), "{text}");
        assert!(text.contains("server a {"), "{text}");
        let cfg = t.app.handle(&req("GET", "/api/config", "", &[c]));
        let v: Value = serde_json::from_slice(&cfg.body).unwrap();
        assert_eq!(v["config"]["virtual_servers"][0]["servers"][0]["name"], "a");
        let del = t
            .app
            .handle(&req("DELETE", "/api/virtual/0/servers/0", "", &ok));
        assert_eq!(del.status, 200);
        let apply = t.app.handle(&req("POST", "/api/apply", "", &ok));
        assert_eq!(apply.status, 409);
        assert!(apply.body_text().contains("nothing to reload"));
        let page = t.app.handle(&req("GET", "/virtual/0", "", &[c]));
        assert_eq!(page.status, 200);
        assert!(page.body_text().contains(&csrf));
    }
}
