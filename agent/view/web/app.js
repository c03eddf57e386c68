'use strict';
// The ctxagent page: a process list, per process its site graph as SVG (Layout, layout.js), the
// findings linked to their nodes, and per site its contexts and goroutines. Served by the agent
// (polls its JSON) or exported with its data inlined (window.CTXAGENT_DATA, no polling).
(function () {
  const POLL_MS = 3000;
  const SVG = 'http://www.w3.org/2000/svg';
  const inline = window.CTXAGENT_DATA || null;
  const $ = (id) => document.getElementById(id);

  function getJson(url) {
    return fetch(url, { cache: 'no-store' }).then((r) => {
      if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
      return r.text();
    }).then((t) => { state.bytes = t.length; return JSON.parse(t); });
  }
  const api = {
    processes: () => (inline ? Promise.resolve(inline.processes) : getJson('/processes')),
    graph: (pid) => (inline ? Promise.resolve(inline.graphs[pid]) : getJson('/processes/' + pid + '/graph')),
    detail: (pid, id) => (inline
      ? Promise.resolve(((inline.details || {})[pid] || {})[id])
      : getJson('/processes/' + pid + '/sites/' + encodeURIComponent(id))),
  };

  const state = { pid: null, graph: null, key: '', layout: null, selected: null, bytes: 0, draws: 0 };
  // A link to one site: #pid=<pid>&node=<id> (what selecting a site puts in the address bar).
  let linkedNode = (location.hash.match(/node=(\w+)/) || [])[1];

  function el(tag, attrs, text) {
    const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const base = (f) => (f || '?').split('/').pop();
  const where = (s) => base(s.file) + ':' + s.line;
  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '\u2026' : s);
  const age = (s) => (s < 1 ? Math.round(s * 1000) + 'ms' : s < 120 ? s.toFixed(1) + 's' : Math.round(s / 60) + 'm');
  const rate = (r) => (Math.abs(r) < 0.05 ? '' : (r > 0 ? '+' : '') + r.toFixed(1) + '/s');

  function renderProcesses(list) {
    const ul = $('process-list');
    ul.replaceChildren();
    list.forEach((p) => {
      const li = el('li', { 'data-pid': p.pid, class: p.pid === state.pid ? 'selected' : '' });
      li.append(el('span', {}, p.pid + ' ' + (p.binary || '')));
      if (p.findings) li.append(el('span', { class: 'bad' }, ' \u2022 ' + p.findings + ' finding(s)'));
      li.addEventListener('click', () => selectProcess(p.pid));
      ul.append(li);
    });
    if (state.pid === null && list.length) {
      const want = Number((location.hash.match(/pid=(\d+)/) || [])[1]);
      const p = list.find((q) => q.pid === want) || list.find((q) => q.findings) || list[0];
      selectProcess(p.pid);
    }
  }

  function renderFindings(g) {
    const ul = $('finding-list');
    ul.replaceChildren();
    if (!g.findings.length) ul.append(el('li', {}, 'no findings'));
    g.findings.forEach((f, i) => {
      const li = el('li', { 'data-finding': i });
      const a = el('a', { href: '#node=' + f.node, class: 'finding-link', 'data-node': f.node },
        f.kind + '  ' + where(f.site) + '  \u00d7' + f.count);
      a.addEventListener('click', (ev) => { ev.preventDefault(); selectNode(f.node, true); });
      li.append(a, el('span', { class: 'why' }, f.explanation));
      ul.append(li);
    });
  }

  function nodeLines(n) {
    if (n.type === 'goroutines') {
      const waits = Object.entries(n.wait_states || {}).sort((a, b) => b[1] - a[1])
        .map(([w, c]) => w + ' ' + c).join(', ');
      return ['go ' + where(n.site), clip(n.function || '', 33),
        n.goroutines + ' running' + (waits ? ' \u00b7 ' + clip(waits, 22) : '') + ' ' + rate(n.growth_per_s)];
    }
    let counts = 'live ' + n.live + ' \u00b7 created ' + n.created;
    if (n.leaked) counts = 'live ' + n.live + ' \u00b7 leaked ' + n.leaked;
    return [where(n.site) + ' ' + n.kind, clip(n.site.function || '', 33), counts + ' ' + rate(n.growth_per_s)];
  }

  function edgePath(pts) {
    let d = 'M' + pts[0][0] + ',' + pts[0][1];
    for (let i = 1; i < pts.length; i++) {
      const [x0, y0] = pts[i - 1], [x1, y1] = pts[i], mx = (x0 + x1) / 2;
      d += ' C' + mx + ',' + y0 + ' ' + mx + ',' + y1 + ' ' + x1 + ',' + y1;
    }
    return d;
  }

  function drawGraph(g) {
    const t0 = performance.now();
    const key = g.nodes.map((n) => n.id).join() + '|' + g.edges.map((e) => e.from + '>' + e.to).join();
    if (key !== state.key) { state.layout = Layout.layout(g); state.key = key; }
    const t1 = performance.now();
    const lay = state.layout, svg = $('graph');
    svg.replaceChildren();
    // Shrunk (down to 60%) to fit the pane's width before it scrolls.
    const room = $('graph-wrap').clientWidth || lay.width;
    const scale = Math.min(1, Math.max(0.6, room / lay.width));
    svg.setAttribute('viewBox', '0 0 ' + lay.width + ' ' + lay.height);
    svg.setAttribute('width', Math.max(lay.width * scale, 200));
    svg.setAttribute('height', Math.max(lay.height * scale, 100));
    const defs = el('svg:defs');
    [['arrow-green', '#2a9d3a'], ['arrow-gray', '#8a94a6'], ['arrow-red', 'red']].forEach(([id, c]) => {
      const m = el('svg:marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
      m.append(el('svg:path', { d: 'M0,0 L10,5 L0,10 z', fill: c }));
      defs.append(m);
    });
    svg.append(defs);
    const edges = el('svg:g', { class: 'edges' });
    g.edges.forEach((e, i) => {
      let pts = lay.edges[i];
      const a = lay.nodes.get(e.from);
      if (!pts && a) pts = [[a.x + a.w - 30, a.y], [a.x + a.w - 10, a.y - 22], [a.x + a.w - 50, a.y - 22], [a.x + a.w - 60, a.y]];
      if (!pts) return;
      const arrow = e.type === 'derived' ? 'arrow-green' : e.type === 'broken' ? 'arrow-red' : 'arrow-gray';
      const p = el('svg:path', { class: 'edge ' + e.type, d: edgePath(pts), 'data-from': e.from, 'data-to': e.to,
        'data-type': e.type, 'marker-end': 'url(#' + arrow + ')' });
      if (e.type === 'broken') { p.setAttribute('stroke', 'red'); p.setAttribute('stroke-dasharray', '8 5'); }
      p.append(el('svg:title', {}, e.type + ' \u00d7' + e.count + ': ' + e.from + ' \u2192 ' + e.to));
      edges.append(p);
      if (e.type === 'broken') {
        const mid = pts[Math.floor(pts.length / 2)];
        edges.append(el('svg:text', { class: 'edge-label', x: mid[0] - 20, y: mid[1] - 6 }, 'broken \u00d7' + e.count));
      }
    });
    svg.append(edges);
    const nodes = el('svg:g', { class: 'nodes' });
    g.nodes.forEach((n) => {
      const pos = lay.nodes.get(n.id);
      const leaking = n.leaked > 0 || n.findings.length > 0;
      const cls = 'node ' + n.type + (leaking ? ' leaking' : '') + (n.id === state.selected ? ' selected' : '');
      const grp = el('svg:g', { class: cls, id: 'node-' + n.id, 'data-id': n.id, transform: 'translate(' + pos.x + ',' + pos.y + ')' });
      grp.append(el('svg:rect', { width: pos.w, height: pos.h }));
      const lines = nodeLines(n);
      grp.append(el('svg:text', { x: 8, y: 16, class: 'title' }, lines[0]));
      grp.append(el('svg:text', { x: 8, y: 32 }, lines[1]));
      grp.append(el('svg:text', { x: 8, y: 48, class: 'counts', 'data-live': n.live, 'data-leaked': n.leaked || 0 }, lines[2]));
      grp.append(el('svg:title', {}, n.site.file + ':' + n.site.line + '\n' + (n.function || n.site.function)));
      grp.addEventListener('click', () => selectNode(n.id, false));
      nodes.append(grp);
    });
    svg.append(nodes);
    const t2 = performance.now();
    state.draws++;
    const timing = { layout_ms: +(t1 - t0).toFixed(1), draw_ms: +(t2 - t1).toFixed(1), nodes: g.nodes.length,
      edges: g.edges.length, json_bytes: state.bytes, crossings: lay.crossings };
    window.ctxagentTiming = timing;
    $('render-stats').textContent = g.nodes.length + ' sites, ' + g.edges.length + ' edges, ' +
      g.tracked_contexts + ' contexts tracked \u00b7 layout ' + timing.layout_ms + ' ms, draw ' + timing.draw_ms + ' ms';
    document.body.dataset.draws = state.draws;
  }

  function table(head, rows) {
    const t = el('table');
    const tr = el('tr');
    head.forEach((h) => tr.append(el('th', {}, h)));
    t.append(tr);
    rows.forEach(([cls, cells]) => {
      const r = el('tr', { class: cls });
      cells.forEach((c) => r.append(el('td', { class: 'mono' }, String(c))));
      t.append(r);
    });
    return t;
  }

  function renderDetail(d) {
    const body = $('detail-body');
    body.replaceChildren();
    if (!d) { body.append(el('p', {}, 'This site is no longer tracked.')); return; }
    const n = d.node;
    body.append(el('div', { class: 'mono' }, n.site.file + ':' + n.site.line));
    body.append(el('div', { class: 'mono' }, n.type === 'goroutines' ? 'go ' + n.function : n.site.function + ' (' + n.kind + ')'));
    d.findings.forEach((f) => {
      const box = el('div', { class: 'finding-box' });
      box.append(el('b', {}, f.kind + ' \u00d7' + f.count), el('div', {}, f.explanation));
      body.append(box);
    });
    if (n.type === 'contexts') {
      body.append(el('h2', {}, 'Counts'));
      const c = n.cancel_causes;
      body.append(table(['live', 'tracked', 'created', 'cancelled', 'own/parent/deadline'],
        [['counts', [n.live, n.tracked, n.created, n.cancelled, c.own + '/' + c.parent + '/' + c.deadline]]]));
      body.append(el('h2', {}, 'Contexts (' + d.contexts.length + (d.more_contexts ? ' of ' + (d.contexts.length + d.more_contexts) : '') + ')'));
      body.append(table(['#', 'state', 'age', 'cause / deadline', 'parent'], d.contexts.map((x) => ['context-row', [
        x.id, x.state, age(x.age_s),
        x.cause ? x.cause + ' ' + age(x.cancelled_s_ago) + ' ago' + (x.cancel_site ? ' at ' + where(x.cancel_site) : '')
          : (x.deadline_in_s !== undefined ? 'deadline in ' + age(x.deadline_in_s) : ''),
        x.parent ? '#' + x.parent + (x.parent_site ? ' ' + where(x.parent_site) : '') : (x.root || '')]])));
    }
    body.append(el('h2', {}, 'Goroutines (' + d.goroutines.length + (d.more_goroutines ? ' of ' + (d.goroutines.length + d.more_goroutines) : '') + ')'));
    body.append(table(['goid', 'state', 'go site', 'function', 'age'], d.goroutines.map((x) => ['goroutine-row', [
      x.goid, x.wait_state || x.state, where(x.go_site), clip(x.function, 30), age(x.age_s)]])));
  }

  function selectNode(id, scroll) {
    state.selected = id;
    history.replaceState(null, '', '#pid=' + state.pid + '&node=' + id);
    document.querySelectorAll('.node.selected').forEach((e) => e.classList.remove('selected'));
    const n = document.getElementById('node-' + id);
    if (n) {
      n.classList.add('selected');
      if (scroll) {
        n.scrollIntoView({ block: 'center', inline: 'center' });
        n.classList.add('flash');
        setTimeout(() => n.classList.remove('flash'), 1200);
      }
    }
    return api.detail(state.pid, id).then(renderDetail).catch((e) => { $('detail-body').textContent = String(e); });
  }

  function selectProcess(pid) {
    state.pid = pid;
    state.key = '';
    state.selected = null;
    history.replaceState(null, '', '#pid=' + pid);
    document.querySelectorAll('#process-list li').forEach((li) => li.classList.toggle('selected', Number(li.dataset.pid) === pid));
    $('detail-body').textContent = 'Click a site in the graph.';
    return refreshGraph();
  }

  function refreshGraph() {
    if (state.pid === null) return Promise.resolve();
    const pid = state.pid;
    return api.graph(pid).then((g) => {
      if (pid !== state.pid || !g) return;
      state.graph = g;
      renderFindings(g);
      drawGraph(g);
      if (linkedNode && g.nodes.some((n) => n.id === linkedNode)) {
        const id = linkedNode;
        linkedNode = undefined;
        return selectNode(id, true);
      }
      if (state.selected) return api.detail(pid, state.selected).then(renderDetail);
    });
  }

  function poll() {
    return api.processes().then(renderProcesses).then(refreshGraph).then(() => {
      $('status').textContent = inline ? 'exported snapshot' : 'live \u00b7 updated ' + new Date().toLocaleTimeString();
    }).catch((e) => { $('status').textContent = String(e); });
  }

  window.ctxagent = { selectNode, selectProcess, state };
  poll();
  if (!inline) setInterval(poll, POLL_MS);
})();
