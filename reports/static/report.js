/* medbench report: the sample browser. Inlined at render time; the page's CSP allows exactly this script.
 * Model and dataset text arrives as JSON (a non-executed data block) and reaches the page only through
 * textContent / createTextNode: never innerHTML, so a completion "<script>…" is shown as text. */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("medbench-data").textContent);
  var Q = DATA.questions;
  var CK = DATA.checkpoints;
  var state = { task: "", subgroup: "", ck: "", outcome: "", flip: "", terms: [], page: 0, pageSize: 25 };
  var filtered = Q;

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function searchText(q) {
    if (q._s === undefined) {
      var parts = [q.q || "", q.y === null ? "" : String(q.y), q.id, q.g || ""];
      for (var i = 0; i < q.c.length; i++) {
        var c = q.c[i];
        if (c) { parts.push(c.txt || "", c.x === null ? "" : String(c.x)); }
      }
      q._s = parts.join("\u0001").toLowerCase();
    }
    return q._s;
  }

  function cellMatches(c, outcome) {
    if (!c) { return false; }
    if (outcome === "truncated") { return c.tr === 1; }
    return c.o === Number(outcome);
  }

  function matches(q) {
    if (state.task !== "" && q.t !== Number(state.task)) { return false; }
    if (state.subgroup !== "" && q.g !== state.subgroup) { return false; }
    if (state.ck !== "" && !q.c[Number(state.ck)]) { return false; }
    if (state.flip !== "" && q.f.indexOf(Number(state.flip)) < 0) { return false; }
    if (state.outcome === "disagree") {
      var seen = {}, n = 0;
      for (var i = 0; i < q.c.length; i++) {
        if (q.c[i] && !seen[q.c[i].o]) { seen[q.c[i].o] = true; n++; }
      }
      if (n < 2) { return false; }
    } else if (state.outcome !== "") {
      if (state.ck !== "") {
        if (!cellMatches(q.c[Number(state.ck)], state.outcome)) { return false; }
      } else {
        var any = false;
        for (var j = 0; j < q.c.length && !any; j++) { any = cellMatches(q.c[j], state.outcome); }
        if (!any) { return false; }
      }
    }
    if (state.terms.length) {
      var s = searchText(q);
      for (var k = 0; k < state.terms.length; k++) {
        if (s.indexOf(state.terms[k]) < 0) { return false; }
      }
    }
    return true;
  }

  /* Append t[s:e] to parent, with m (a [start, end] span) wrapped in <mark> when it lies inside. */
  function appendMarked(parent, t, s, e, m) {
    if (s >= e) { return; }
    if (m && m[0] >= s && m[1] <= e && m[1] > m[0]) {
      if (m[0] > s) { parent.appendChild(document.createTextNode(t.slice(s, m[0]))); }
      parent.appendChild(el("mark", null, t.slice(m[0], m[1])));
      if (e > m[1]) { parent.appendChild(document.createTextNode(t.slice(m[1], e))); }
    } else {
      parent.appendChild(document.createTextNode(t.slice(s, e)));
    }
  }

  /* Append t[s:e], underlining the answer region a and marking the extracted answer m. */
  function appendRange(parent, t, s, e, a, m) {
    if (s >= e) { return; }
    if (a && a[0] >= s && a[1] <= e) {
      appendMarked(parent, t, s, a[0], null);
      var span = el("span", "answer");
      span.title = "answer region";
      appendMarked(span, t, a[0], a[1], m);
      parent.appendChild(span);
      appendMarked(parent, t, a[1], e, null);
    } else {
      appendMarked(parent, t, s, e, m);
    }
  }

  /* Where the extracted answer sits: inside the answer region if there is one, else its last mention. */
  function markSpan(c) {
    if (c.x === null || c.x === undefined || c.x === "") { return null; }
    var x = String(c.x).toLowerCase(), t = c.txt.toLowerCase(), i;
    if (c.a) {
      i = t.slice(c.a[0], c.a[1]).indexOf(x);
      return i < 0 ? null : [c.a[0] + i, c.a[0] + i + x.length];
    }
    i = t.lastIndexOf(x);
    return i < 0 ? null : [i, i + x.length];
  }

  function renderCompletion(c) {
    var box = el("div", "completion");
    var t = c.txt || "";
    if (!t) { box.appendChild(el("span", "missing", "(empty completion)")); return box; }
    var m = markSpan(c), pos = 0;
    if (c.r && c.r[1] > c.r[0]) {
      appendRange(box, t, 0, c.r[0], c.a, m);
      var det = el("details");
      var unit = DATA.lengthUnit;
      det.appendChild(el("summary", null, "reasoning" + (c.len === null ? "" : " · " + c.len + " " + unit)));
      appendMarked(det, t, c.r[0], c.r[1], m);
      box.appendChild(det);
      pos = c.r[1];
    }
    appendRange(box, t, pos, t.length, c.a, m);
    return box;
  }

  function flag(text, on, extra) {
    return el("span", "flag" + (on ? "" : " off") + (extra ? " " + extra : ""), text);
  }

  function renderCell(ci, c) {
    var col = el("div", "col");
    col.dataset.checkpoint = CK[ci];
    var head = el("div", "col-head");
    var name = el("span", "name");
    name.appendChild(el("span", "swatch ck" + (ci % 8)));
    name.appendChild(document.createTextNode(CK[ci]));
    head.appendChild(name);
    if (!c) {
      col.appendChild(head);
      col.appendChild(el("div", "missing", "not evaluated on this question"));
      return col;
    }
    head.appendChild(el("span", "outcome o" + c.o, DATA.outcomes[c.o]));
    head.appendChild(flag("strict format", c.fs === 1));
    head.appendChild(flag("soft format", c.fo === 1));
    if (c.tr === 1) { head.appendChild(flag("truncated", true, "trunc")); }
    col.appendChild(head);
    var ex = el("div", "extracted");
    if (c.x === null || c.x === undefined) {
      ex.appendChild(el("span", "muted", "no answer extracted"));
    } else {
      ex.appendChild(document.createTextNode("extracted "));
      ex.appendChild(el("mark", null, c.x));
      if (c.src) { ex.appendChild(el("span", "muted", " from " + c.src)); }
    }
    col.appendChild(ex);
    col.appendChild(renderCompletion(c));
    if (c.j) {
      var j = el("div", "judge");
      j.appendChild(el("b", null, "judge "));
      if (c.j[0] === "proxy") { j.appendChild(el("span", "proxy-tag", "proxy")); j.appendChild(document.createTextNode(" ")); }
      var verdict = c.j[1] === true ? "agrees" : (c.j[1] === false ? "disagrees" : "no verdict");
      var score = typeof c.j[2] === "number" ? " · score " + c.j[2].toFixed(2) : "";
      j.appendChild(document.createTextNode(verdict + score + (c.j[4] ? " · " + c.j[4] : "")));
      if (c.j[3]) { j.appendChild(el("div", null, c.j[3])); }
      col.appendChild(j);
    }
    if (c.n && c.n.length) { col.appendChild(el("div", "notes", "grader notes: " + c.n.join("; "))); }
    return col;
  }

  function renderQuestion(q, onlyCk) {
    var box = el("article", "question");
    box.dataset.task = DATA.tasks[q.t];
    box.dataset.id = q.id;
    var head = el("div", "q-head");
    var meta = el("div", "q-meta");
    meta.appendChild(el("b", null, DATA.tasks[q.t]));
    if (q.g) { meta.appendChild(el("span", null, q.g)); }
    meta.appendChild(el("code", null, q.id));
    for (var i = 0; i < q.f.length; i++) {
      var label = DATA.flips[q.f[i]];
      meta.appendChild(el("span", "flip " + (label.indexOf("fixed") === 0 ? "fixed" : "broken"), label));
    }
    head.appendChild(meta);
    head.appendChild(el("div", "q-text", q.q));
    var target = el("div", "q-target");
    target.appendChild(el("b", null, "target: "));
    target.appendChild(document.createTextNode(q.y === null ? "—" : String(q.y)));
    head.appendChild(target);
    box.appendChild(head);
    var cols = el("div", "cols");
    for (var ci = 0; ci < CK.length; ci++) {
      if (onlyCk !== "" && ci !== Number(onlyCk)) { continue; }
      cols.appendChild(renderCell(ci, q.c[ci]));
    }
    box.appendChild(cols);
    return box;
  }

  function render() {
    var list = $("sample-list");
    var pages = Math.max(1, Math.ceil(filtered.length / state.pageSize));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var start = state.page * state.pageSize;
    var slice = filtered.slice(start, start + state.pageSize);
    var frag = document.createDocumentFragment();
    for (var i = 0; i < slice.length; i++) { frag.appendChild(renderQuestion(slice[i], state.ck)); }
    list.replaceChildren(frag);
    var count = $("sb-count");
    count.dataset.count = String(filtered.length);
    count.textContent = filtered.length === 0 ? "No question matches these filters"
      : "Showing " + (start + 1).toLocaleString() + "–" + (start + slice.length).toLocaleString() + " of " +
        filtered.length.toLocaleString() + " questions";
    $("pg-info").textContent = "page " + (state.page + 1) + " of " + pages;
    $("pg-first").disabled = $("pg-prev").disabled = state.page === 0;
    $("pg-next").disabled = $("pg-last").disabled = state.page >= pages - 1;
  }

  var lastUpdateMs = null, updates = 0;

  function timed(fn) {
    return function () {
      var t0 = performance.now();
      fn();
      lastUpdateMs = performance.now() - t0;
      updates += 1;
    };
  }

  var applyFilters = timed(function () {
    filtered = Q.filter(matches);
    state.page = 0;
    render();
  });
  var turnPage = function (to) { return timed(function () { state.page = to(state.page); render(); }); };

  function bindSelect(id, key) {
    var node = $(id);
    if (!node) { return; }
    node.addEventListener("change", function () { state[key] = node.value; applyFilters(); });
  }

  bindSelect("f-task", "task");
  bindSelect("f-subgroup", "subgroup");
  bindSelect("f-checkpoint", "ck");
  bindSelect("f-outcome", "outcome");
  bindSelect("f-flip", "flip");
  $("f-pagesize").addEventListener("change", function () {
    state.pageSize = Number($("f-pagesize").value) || 25;
    render();
  });
  var timer = null;
  $("f-search").addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      state.terms = $("f-search").value.toLowerCase().split(/\s+/).filter(function (s) { return s.length > 0; });
      applyFilters();
    }, 150);
  });
  $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); });
  $("pg-first").addEventListener("click", turnPage(function () { return 0; }));
  $("pg-prev").addEventListener("click", turnPage(function (p) { return p - 1; }));
  $("pg-next").addEventListener("click", turnPage(function (p) { return p + 1; }));
  $("pg-last").addEventListener("click", turnPage(function () { return 1e9; }));

  var showcase = $("showcase-list");
  if (showcase) {
    for (var s = 0; s < Q.length && Q[s].s === 1; s++) { showcase.appendChild(renderQuestion(Q[s], "")); }
  }
  state.pageSize = Number($("f-pagesize").value) || 25;
  render();
  /* A small hook for tests and for people poking at the page in devtools. */
  window.medbenchReport = {
    matching: function () { return filtered.length; },
    shown: function () { return $("sample-list").children.length; },
    lastUpdateMs: function () { return lastUpdateMs; },
    updates: function () { return updates; },
    total: Q.length
  };
  document.documentElement.dataset.ready = "1";
})();
