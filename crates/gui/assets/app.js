// piranha-gui: sends the panels' forms to the JSON API, shows errors beside their fields, and
// keeps the CONTROL/MONITORING panel up to date (no full page reloads). No dependencies.
(function () {
  'use strict';
  var meta = function (n) { var m = document.querySelector('meta[name="' + n + '"]'); return m ? m.content : ''; };
  var csrf = meta('csrf-token');
  function serial() { var s = meta('serial-no'); return s === '' ? null : parseInt(s, 10); }

  function api(method, url, body) {
    var opts = { method: method, headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        return { status: r.status, ok: r.ok, body: j };
      });
    });
  }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'class') e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    });
    return e;
  }

  function flash(msg, cls) {
    var f = document.getElementById('flash');
    if (!f) return;
    f.textContent = msg;
    f.className = msg ? (cls || 'ok') : '';
  }

  var saved = sessionStorage.getItem('piranha-flash');
  if (saved) { sessionStorage.removeItem('piranha-flash'); flash(saved, 'ok'); }

  function clearErrors(form) {
    form.querySelectorAll('.err').forEach(function (e) { e.textContent = ''; });
    form.querySelectorAll('.invalid').forEach(function (e) { e.classList.remove('invalid'); });
    var g = form.querySelector('.general');
    if (g) g.textContent = '';
  }

  function showErrors(form, body) {
    var rest = [];
    (body.errors || []).forEach(function (e) {
      var span = form.querySelector('.err[data-err="' + CSS.escape(e.field) + '"]');
      if (span) {
        span.textContent = e.message;
        var input = form.querySelector('[name="' + CSS.escape(e.field) + '"]');
        if (input) input.classList.add('invalid');
      } else {
        rest.push((e.field ? e.field + ': ' : '') + e.message);
      }
    });
    rest = rest.concat(body.general || []);
    if (rest.length === 0 && !(body.errors || []).length && body.error) rest.push(body.error);
    var g = form.querySelector('.general');
    if (g) rest.forEach(function (t) { g.appendChild(el('div', {}, [t])); });
  }

  function afterSave(r, next) {
    var w = (r.body.warnings || []).length ? ' Warnings: ' + r.body.warnings.join('; ') : '';
    sessionStorage.setItem('piranha-flash', 'Saved (serial_no ' + r.body.serial_no + ').' + w);
    location.assign(next);
  }

  document.querySelectorAll('form.api').forEach(function (form) {
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      clearErrors(form);
      flash('', '');
      var fields = {};
      form.querySelectorAll('input[name], select[name], textarea[name]').forEach(function (x) {
        fields[x.name] = x.type === 'checkbox' ? (x.checked ? '1' : '0') : x.value.trim();
      });
      api(form.dataset.method, form.dataset.url, { serial_no: serial(), fields: fields }).then(function (r) {
        if (r.ok) {
          var next = form.dataset.next || location.pathname;
          if (r.body.index !== undefined) next = next.replace('{index}', r.body.index);
          afterSave(r, next);
        } else if (r.status === 401) {
          location.assign('/login');
        } else {
          showErrors(form, r.body);
          flash(r.body.error || ('Error ' + r.status), 'error');
        }
      }, function (e) { flash('Request failed: ' + e, 'error'); });
    });
  });

  document.querySelectorAll('button.act').forEach(function (b) {
    b.addEventListener('click', function () {
      if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
      var body;
      if (b.hasAttribute('data-fields')) {
        var fields = {};
        try { fields = b.dataset.fields ? JSON.parse(b.dataset.fields) : {}; } catch (e) { fields = {}; }
        body = { serial_no: serial(), fields: fields };
      }
      api(b.dataset.method, b.dataset.url, body).then(function (r) {
        if (r.status === 401) { location.assign('/login'); return; }
        if (!r.ok) {
          var msg = r.body.error || ('Error ' + r.status);
          if ((r.body.general || []).length) msg += ': ' + r.body.general.join('; ');
          if ((r.body.errors || []).length) msg += ': ' + r.body.errors.map(function (e) { return e.field + ' ' + e.message; }).join('; ');
          flash(msg, 'error');
          return;
        }
        if (r.body.serial_no !== undefined) afterSave(r, location.pathname);
        else flash(r.body.message || 'Done.', 'ok');
      }, function (e) { flash('Request failed: ' + e, 'error'); });
    });
  });

  // ------------------------------------------------------------------ monitoring
  var pulseBox = document.getElementById('pulse');
  if (!pulseBox) return;
  var history = {};
  var HISTORY = 90;

  function table(head, rows, id) {
    var t = el('table', { class: 'list' }, [el('thead', {}, [el('tr', {}, head.map(function (h) { return el('th', {}, [h]); }))])]);
    if (id) t.id = id;
    var tb = el('tbody');
    rows.forEach(function (r) { tb.appendChild(r); });
    t.appendChild(tb);
    return t;
  }
  function replace(box, node) { box.textContent = ''; box.appendChild(node); }
  function when(secs) { return secs ? new Date(secs * 1000).toLocaleString() : ''; }
  function num(n) {
    if (n === null || n === undefined) return '';
    if (n >= 1e9) return (n / 1e9).toFixed(1) + 'G';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (n >= 1e4) return (n / 1e3).toFixed(1) + 'k';
    return String(n);
  }

  function renderPulse(p) {
    if (!p || p.stale) {
      replace(pulseBox, el('p', { class: 'state-down', id: 'pulse-state' }, ['pulse is not running on this router' + (p ? ' (last seen ' + when(p.updated) + ')' : '')]));
      return;
    }
    replace(pulseBox, table(['STATE', 'ROLE', 'PARTNER', 'FAILOVERS', 'SINCE', 'LVSD', 'ADDRESSES'], [
      el('tr', {}, [
        el('td', { id: 'pulse-state', class: 'state-' + (p.state === 'active' ? 'up' : 'standby') }, [p.state]),
        el('td', {}, [p.role]),
        el('td', {}, [p.partner]),
        el('td', {}, [p.failovers]),
        el('td', {}, [when(p.since)]),
        el('td', {}, [p.lvsd_pid ? 'pid ' + p.lvsd_pid : (p.lvsd_failed ? 'failed' : 'not running')]),
        el('td', {}, [(p.addresses || []).join(', ')])
      ])
    ]));
  }

  function renderServers(l) {
    var box = document.getElementById('servers');
    if (!l || l.stale) {
      replace(box, el('p', { class: 'state-down', id: 'lvsd-state' }, ['lvsd is not running' + (l ? ' (last seen ' + when(l.updated) + ')' : '')]));
      return;
    }
    var rows = [];
    (l.virtual_servers || []).forEach(function (vs) {
      (vs.real_servers || []).forEach(function (rs) {
        var ipvs = rs.ipvs || {};
        rows.push(el('tr', { 'data-vs': vs.name, 'data-rs': rs.name }, [
          el('td', {}, [vs.name + (vs.active ? '' : ' (inactive)')]),
          el('td', {}, [vs.service || '']),
          el('td', {}, [rs.name]),
          el('td', {}, [(rs.address || '') + ':' + rs.port]),
          el('td', { class: 'health state-' + rs.health }, [rs.health]),
          el('td', { class: 'weight' }, [rs.weight === null || rs.weight === undefined ? '' : rs.weight]),
          el('td', {}, [rs.configured_weight]),
          el('td', {}, [ipvs.active_conns === undefined ? '' : ipvs.active_conns + ' / ' + ipvs.inactive_conns]),
          el('td', { class: 'failure' }, [rs.last_failure ? rs.last_failure + ' (' + when(rs.last_failure_at) + ')' : ''])
        ]));
      });
      if (vs.sorry_server_on) rows.push(el('tr', {}, [el('td', { colspan: '9', class: 'state-down' }, [vs.name + ': every real server is down, the sorry server answers'])]));
    });
    var t = table(['VIRTUAL', 'SERVICE', 'REAL SERVER', 'ADDRESS', 'HEALTH', 'WEIGHT', 'CONFIGURED', 'CONNS (ACT/INACT)', 'LAST FAILURE'], rows, 'health-table');
    var note = l.ipvs_error ? el('p', { class: 'state-down' }, ['IPVS: ' + l.ipvs_error]) : null;
    box.textContent = '';
    box.appendChild(t);
    if (note) box.appendChild(note);
  }

  function renderIpvs(s) {
    var box = document.getElementById('ipvs');
    var rows = [];
    if (s.proc_ipvs) {
      s.proc_ipvs.services.forEach(function (sv) {
        rows.push(el('tr', { class: 'svc' }, [el('td', {}, [sv.protocol.toUpperCase() + ' ' + sv.address]), el('td', {}, [sv.scheduler + ' ' + sv.flags]), el('td'), el('td'), el('td')]));
        sv.destinations.forEach(function (d) {
          rows.push(el('tr', {}, [el('td', {}, ['  -> ' + d.address]), el('td', {}, [d.forward]), el('td', {}, [d.weight]), el('td', {}, [d.active_conns]), el('td', {}, [d.inactive_conns])]));
        });
      });
      replace(box, table(['SERVICE / REAL SERVER', 'SCHEDULER / FORWARD', 'WEIGHT', 'ACTIVE', 'INACTIVE'], rows));
      return;
    }
    var l = s.lvsd;
    if (l && !l.stale) {
      (l.virtual_servers || []).filter(function (v) { return v.ipvs; }).forEach(function (vs) {
        rows.push(el('tr', { class: 'svc' }, [el('td', {}, [vs.service]), el('td', {}, [vs.ipvs.scheduler]), el('td'), el('td'), el('td')]));
        vs.real_servers.filter(function (r) { return r.ipvs; }).forEach(function (r) {
          rows.push(el('tr', {}, [el('td', {}, ['  -> ' + r.address + ':' + r.port]), el('td'), el('td', {}, [r.ipvs.weight]), el('td', {}, [r.ipvs.active_conns]), el('td', {}, [r.ipvs.inactive_conns])]));
        });
      });
      replace(box, table(['SERVICE / REAL SERVER', 'SCHEDULER', 'WEIGHT', 'ACTIVE', 'INACTIVE'], rows));
      return;
    }
    replace(box, el('p', {}, ['No IPVS table readable (no /proc/net/ip_vs and lvsd is not running).']));
  }

  function renderProcs(list) {
    var rows = list.map(function (p) { return el('tr', {}, [el('td', {}, [p.pid]), el('td', {}, [p.program]), el('td', { class: 'cmd' }, [p.cmdline])]); });
    replace(document.getElementById('procs'), rows.length ? table(['PID', 'PROGRAM', 'COMMAND'], rows) : el('p', {}, ['None of the suite\'s processes runs.']));
  }

  var SVG = 'http://www.w3.org/2000/svg';
  function spark(points, key, w, h) {
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    var max = 1;
    points.forEach(function (p) { if (p[key] > max) max = p[key]; });
    var step = w / (HISTORY - 1);
    var off = HISTORY - points.length;
    var d = points.map(function (p, i) { return ((off + i) * step).toFixed(1) + ',' + (h - 2 - (p[key] / max) * (h - 4)).toFixed(1); }).join(' ');
    var line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', d);
    line.setAttribute('class', 'line-' + key);
    svg.appendChild(line);
    return { svg: svg, max: max };
  }

  function renderCharts(l) {
    var box = document.getElementById('charts');
    if (!l || l.stale) { replace(box, el('p', {}, ['No counters: lvsd is not running.'])); return; }
    var now = Date.now();
    (l.virtual_servers || []).forEach(function (vs) {
      if (!vs.ipvs) return;
      var st = vs.ipvs.stats;
      var active = 0;
      vs.real_servers.forEach(function (r) { if (r.ipvs) active += r.ipvs.active_conns; });
      var h = history[vs.name] || (history[vs.name] = []);
      h.push({ t: now, active: active, cps: st.cps, inbps: st.inbps, outbps: st.outbps, conns: st.conns });
      while (h.length > HISTORY) h.shift();
    });
    box.textContent = '';
    Object.keys(history).forEach(function (name) {
      var h = history[name];
      var last = h[h.length - 1];
      var card = el('div', { class: 'chart', 'data-vs': name }, [el('h4', {}, [name + ' (' + num(last.conns) + ' connections in all)'])]);
      [['active', 'active connections'], ['cps', 'connections/s'], ['inbps', 'bytes/s in'], ['outbps', 'bytes/s out']].forEach(function (k) {
        var s = spark(h, k[0], 240, 40);
        card.appendChild(el('div', { class: 'spark' }, [s.svg, el('span', {}, [k[1] + ': ' + num(last[k[0]]) + ' (max ' + num(s.max) + ')'])]));
      });
      box.appendChild(card);
    });
    if (!box.childNodes.length) box.appendChild(el('p', {}, ['No active virtual server in the IPVS table yet.']));
  }

  var timer = null;
  function refresh() {
    fetch('/api/status', { credentials: 'same-origin' }).then(function (r) {
      if (r.status === 401) { location.assign('/login'); return null; }
      return r.json();
    }).then(function (s) {
      if (!s) return;
      renderPulse(s.pulse);
      renderServers(s.lvsd);
      renderIpvs(s);
      renderProcs(s.processes || []);
      renderCharts(s.lvsd);
      document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      if (s.config && s.config.serial_no !== null) document.getElementById('serial').textContent = s.config.serial_no;
    }).catch(function (e) { flash('Cannot read the status: ' + e, 'error'); }).then(schedule);
  }
  function schedule() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!document.getElementById('auto').checked) return;
    var s = parseFloat(document.getElementById('interval').value);
    if (!(s >= 1)) s = 1;
    timer = setTimeout(refresh, s * 1000);
  }
  document.getElementById('refresh').addEventListener('click', refresh);
  document.getElementById('auto').addEventListener('change', schedule);
  document.getElementById('interval').addEventListener('change', schedule);
  refresh();
})();
