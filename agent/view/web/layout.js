'use strict';
// Layered (Sugiyama-style) layout of the site graph, left to right: cycles broken by reversing
// DFS back edges, longest-path layering, dummy nodes on long edges, barycenter ordering sweeps
// (keeping the order with the fewest crossings), then y coordinates pulled towards neighbours.
// Sites are few (tens to hundreds), so quadratic crossing counts are cheap.
const Layout = (function () {
  const NODE_W = 230, NODE_H = 58, GAP_X = 64, GAP_Y = 22, DUMMY_H = 8, MARGIN = 16;

  // Returns [a, b] pairs of a DAG over 0..n-1 and the set of original edges that were reversed.
  function acyclic(n, pairs) {
    const out = Array.from({ length: n }, () => []);
    pairs.forEach(([a, b], i) => out[a].push([b, i]));
    const color = new Uint8Array(n), reversed = new Set();
    for (let s = 0; s < n; s++) {
      if (color[s]) continue;
      const stack = [[s, 0]];
      color[s] = 1;
      while (stack.length) {
        const top = stack[stack.length - 1];
        const [v, k] = top;
        if (k === out[v].length) { color[v] = 2; stack.pop(); continue; }
        top[1]++;
        const [w, i] = out[v][k];
        if (color[w] === 1) reversed.add(i);
        else if (color[w] === 0) { color[w] = 1; stack.push([w, 0]); }
      }
    }
    return { dag: pairs.map(([a, b], i) => (reversed.has(i) ? [b, a] : [a, b])), reversed };
  }

  function longestPath(n, dag) {
    const indeg = new Array(n).fill(0), out = Array.from({ length: n }, () => []);
    dag.forEach(([a, b]) => { out[a].push(b); indeg[b]++; });
    const layer = new Array(n).fill(0), queue = [];
    for (let v = 0; v < n; v++) if (!indeg[v]) queue.push(v);
    while (queue.length) {
      const v = queue.shift();
      for (const w of out[v]) {
        layer[w] = Math.max(layer[w], layer[v] + 1);
        if (--indeg[w] === 0) queue.push(w);
      }
    }
    return layer;
  }

  // Crossings between adjacent layers: inversions of the lower ends once sorted by upper end,
  // counted with a Fenwick tree (E log V per layer pair).
  function crossings(layers, down) {
    let total = 0;
    for (let l = 0; l + 1 < layers.length; l++) {
      const pos = new Map(layers[l + 1].map((v, i) => [v, i]));
      const segs = [];
      layers[l].forEach((v, i) => (down[v] || []).forEach((w) => segs.push([i, pos.get(w)])));
      segs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const size = layers[l + 1].length + 1, tree = new Array(size + 1).fill(0);
      let seen = 0;
      for (const [, lo] of segs) {
        let le = 0;  // earlier segments ending at or before lo
        for (let i = lo + 1; i > 0; i -= i & -i) le += tree[i];
        total += seen - le;
        for (let i = lo + 1; i <= size; i += i & -i) tree[i]++;
        seen++;
      }
    }
    return total;
  }

  function order(layers, down, up) {
    const sweep = (from, adj) => {
      for (let l = from === 'down' ? 1 : layers.length - 2; l >= 0 && l < layers.length;
           l += from === 'down' ? 1 : -1) {
        const ref = layers[from === 'down' ? l - 1 : l + 1];
        const pos = new Map(ref.map((v, i) => [v, i]));
        const bary = new Map(layers[l].map((v, i) => {
          const ns = (adj[v] || []).filter((w) => pos.has(w));
          return [v, ns.length ? ns.reduce((s, w) => s + pos.get(w), 0) / ns.length : i];
        }));
        layers[l].sort((a, b) => bary.get(a) - bary.get(b));
      }
    };
    let best = layers.map((l) => l.slice()), bestX = crossings(layers, down);
    for (let it = 0; it < 12 && bestX > 0; it++) {
      sweep(it % 2 ? 'up' : 'down', it % 2 ? down : up);
      const x = crossings(layers, down);
      if (x < bestX) { bestX = x; best = layers.map((l) => l.slice()); }
    }
    return { layers: best, crossings: bestX };
  }

  // y of each vertex: stacked in order, then pulled towards the mean of its neighbours' centres.
  function coordinates(layers, height, down, up) {
    const y = new Map();
    layers.forEach((l) => { let top = MARGIN; l.forEach((v) => { y.set(v, top); top += height(v) + GAP_Y; }); });
    const centre = (v) => y.get(v) + height(v) / 2;
    for (let it = 0; it < 8; it++) {
      const adj = it % 2 ? down : up;
      layers.forEach((l) => {
        const want = l.map((v) => {
          const ns = adj[v] || [];
          return ns.length ? ns.reduce((s, w) => s + centre(w), 0) / ns.length - height(v) / 2 : y.get(v);
        });
        let floor = MARGIN;
        l.forEach((v, i) => { const t = Math.max(want[i], floor); y.set(v, t); floor = t + height(v) + GAP_Y; });
      });
    }
    const top = Math.min(...y.values());
    for (const [v, t] of y) y.set(v, t - top + MARGIN);
    return y;
  }

  // graph: {nodes: [{id}], edges: [{from, to}]} -> {nodes: Map id -> {x, y, w, h}, edges: [points],
  // width, height, crossings}.
  function layout(graph) {
    const idx = new Map(graph.nodes.map((n, i) => [n.id, i]));
    const n = graph.nodes.length;
    const pairs = [], edgeOf = [];
    graph.edges.forEach((e, i) => {
      const a = idx.get(e.from), b = idx.get(e.to);
      if (a === undefined || b === undefined || a === b) return;
      pairs.push([a, b]);
      edgeOf.push(i);
    });
    const { dag, reversed } = acyclic(n, pairs);
    const layer = longestPath(n, dag);
    // Long edges become chains of dummy vertices (ids >= n), one per layer crossed.
    let next = n;
    const chains = dag.map(([a, b]) => {
      const chain = [a];
      for (let l = layer[a] + 1; l < layer[b]; l++) { layer[next] = l; chain.push(next++); }
      chain.push(b);
      return chain;
    });
    const down = {}, up = {};
    chains.forEach((c) => {
      for (let i = 0; i + 1 < c.length; i++) {
        (down[c[i]] = down[c[i]] || []).push(c[i + 1]);
        (up[c[i + 1]] = up[c[i + 1]] || []).push(c[i]);
      }
    });
    const layers = [];
    for (let v = 0; v < next; v++) (layers[layer[v]] = layers[layer[v]] || []).push(v);
    for (let l = 0; l < layers.length; l++) layers[l] = layers[l] || [];
    const ordered = order(layers, down, up);
    const height = (v) => (v < n ? NODE_H : DUMMY_H);
    const y = coordinates(ordered.layers, height, down, up);
    const x = (v) => MARGIN + layer[v] * (NODE_W + GAP_X);
    const nodes = new Map();
    let width = 0, bottom = 0;
    for (let v = 0; v < n; v++) {
      nodes.set(graph.nodes[v].id, { x: x(v), y: y.get(v), w: NODE_W, h: NODE_H });
      width = Math.max(width, x(v) + NODE_W + MARGIN);
      bottom = Math.max(bottom, y.get(v) + NODE_H + MARGIN);
    }
    const edges = new Array(graph.edges.length).fill(null);
    chains.forEach((c, k) => {
      const pts = c.map((v, i) => {
        if (v >= n) return [x(v) + NODE_W / 2, y.get(v) + DUMMY_H / 2];
        const side = i === 0 ? NODE_W : 0;  // leave from the right, enter on the left
        return [x(v) + side, y.get(v) + NODE_H / 2];
      });
      edges[edgeOf[k]] = reversed.has(k) ? pts.reverse() : pts;
    });
    return { nodes, edges, width, height: bottom, crossings: ordered.crossings };
  }

  return { layout, NODE_W, NODE_H };
})();
