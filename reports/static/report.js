/* medbench report: expandable summary rows and the sample browser. Inlined at render time; the page's CSP
 * allows exactly this script. Model and dataset text arrives as gzip-compressed JSON in a non-executed data
 * block and reaches the page only through textContent / createTextNode: never innerHTML, so a completion
 * "<script>…" is shown as text. The filters live in the address (#samples?task=…&ck=…), so a link reopens
 * a filtered view and the figures link into it. */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  /* -- the summary: a pooled row expands to its members (works before the samples are unpacked) ---------- */
  var buttons = document.querySelectorAll("button.expand");
  for (var b = 0; b < buttons.length; b++) {
    buttons[b].addEventListener("click", function (ev) {
      var btn = ev.currentTarget;
      var open = btn.getAttribute("aria-expanded") !== "true";
      btn.setAttribute("aria-expanded", String(open));
      btn.textContent = (open ? "▾ " : "▸ ") + btn.textContent.slice(2);
      var rows = document.querySelectorAll("tr[data-parent]");
      for (var r = 0; r < rows.length; r++) {
        if (rows[r].dataset.parent === btn.dataset.target) { rows[r].hidden = !open; }
      }
    });
  }

  /* -- the sample browser ------------------------------------------------------------------------------- */
  var DATA = null, Q = [], CK = [];
  var state = { family: "", task: "", subgroup: "", ck: "", outcome: "", flip: "", search: "", page: 0,
                pageSize: 25, expand: false };
  var filtered = [];
  var lastUpdateMs = null, updates = 0;
  var CONTROLS = { family: "f-family", task: "f-task", subgroup: "f-subgroup", ck: "f-checkpoint",
                   outcome: "f-outcome", flip: "f-flip", search: "f-search" };
  var HASH_KEYS = { family: "family", task: "task", subgroup: "subgroup", ck: "ck", outcome: "outcome",
                    flip: "flip", search: "q" };

  function searchText(q) {
    if (q._s === undefined) {
      var parts = [q.q || "", q.y === null ? "" : String(q.y), q.id, q.g || "", DATA.tasks[q.t]];
      for (var i = 0; i < q.c.length; i++) {
        var c = q.c[i];
        if (c) { parts.push(c.txt || "", c.x === null ? "" : String(c.x)); }
      }
      q._s = parts.join("\u0001").toLowerCase();
    }
    return q._s;
  }

  /* Which tasks the task box selects: an exact task name, else every task whose name or label contains it. */
  function taskSet() {
    if (!state.task) { return null; }
    var exact = DATA.tasks.indexOf(state.task);
    var set = {};
    if (exact >= 0) { set[exact] = true; return set; }
    var needle = state.task.toLowerCase();
    for (var i = 0; i < DATA.tasks.length; i++) {
      if (DATA.tasks[i].toLowerCase().indexOf(needle) >= 0 ||
          DATA.taskLabels[i].toLowerCase().indexOf(needle) >= 0) { set[i] = true; }
    }
    return set;
  }

  function cellMatches(c, outcome) {
    if (!c) { return false; }
    if (outcome === "truncated") { return c.tr === 1; }
    return DATA.outcomes[c.o] === outcome;
  }

  function matcher() {
    var tasks = taskSet();
    var family = state.family === "" ? -1 : DATA.families.indexOf(state.family);
    var ck = state.ck === "" ? -1 : CK.indexOf(state.ck);
    var flip = state.flip === "" ? -1 : DATA.flips.indexOf(state.flip);
    var terms = state.search.toLowerCase().split(/\s+/).filter(function (s) { return s.length > 0; });
    return function (q) {
      if (tasks && !tasks[q.t]) { return false; }
      if (state.family !== "" && DATA.taskFamily[q.t] !== family) { return false; }
      if (state.subgroup !== "" && q.g !== state.subgroup) { return false; }
      if (state.flip !== "" && q.f.indexOf(flip) < 0) { return false; }
      if (state.outcome === "disagree") {
        var seen = {}, n = 0;
        for (var i = 0; i < q.c.length; i++) {
          if (q.c[i] && !seen[q.c[i].o]) { seen[q.c[i].o] = true; n++; }
        }
        if (n < 2) { return false; }
      } else if (state.outcome !== "") {
        if (ck >= 0) {
          if (!cellMatches(q.c[ck], state.outcome)) { return false; }
        } else {
          var any = false;
          for (var j = 0; j < q.c.length && !any; j++) { any = cellMatches(q.c[j], state.outcome); }
          if (!any) { return false; }
        }
      } else if (ck >= 0 && !q.c[ck]) { return false; }
      if (terms.length) {
        var s = searchText(q);
        for (var k = 0; k < terms.length; k++) {
          if (s.indexOf(terms[k]) < 0) { return false; }
        }
      }
      return true;
    };
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

  /* Where the extracted answer sits: inside the answer region the grader recorded, else nowhere (a run
   * without the grader's spans is shown as plain text: the page never re-grades). */
  function markSpan(c) {
    if (c.x === null || c.x === undefined || c.x === "" || !c.a) { return null; }
    var x = String(c.x).toLowerCase(), t = c.txt.toLowerCase();
    var i = t.slice(c.a[0], c.a[1]).indexOf(x);
    return i < 0 ? null : [c.a[0] + i, c.a[0] + i + x.length];
  }

  function renderCompletion(c) {
    var box = el("div", "completion");
    var t = c.txt || "";
    if (!t) { box.appendChild(el("span", "missing", "(empty completion)")); return box; }
    var m = markSpan(c), pos = 0;
    if (c.r && c.r[1] > c.r[0]) {
      appendRange(box, t, 0, c.r[0], c.a, m);
      var det = el("details");
      det.open = state.expand;
      det.appendChild(el("summary", null, "reasoning" + (c.len === null ? "" : " · " + c.len + " " + DATA.lengthUnit)));
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
    var col = el("div", "col" + (CK[ci] === state.ck ? " chosen" : ""));
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
    if (c.fs !== null) { head.appendChild(flag("strict format", c.fs === 1)); }
    if (c.fo !== null) { head.appendChild(flag("soft format", c.fo === 1)); }
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

  function renderQuestion(q) {
    var box = el("article", "question");
    box.dataset.task = DATA.tasks[q.t];
    box.dataset.id = q.id;
    var head = el("div", "q-head");
    var meta = el("div", "q-meta");
    var task = el("b", null, DATA.taskLabels[q.t]);
    task.title = DATA.tasks[q.t];
    meta.appendChild(task);
    if (q.g && q.g !== DATA.taskLabels[q.t] && q.g.replace(/_/g, " ") !== DATA.taskLabels[q.t]) {
      meta.appendChild(el("span", null, q.g));
    }
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
    for (var ci = 0; ci < CK.length; ci++) { cols.appendChild(renderCell(ci, q.c[ci])); }
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
    for (var i = 0; i < slice.length; i++) { frag.appendChild(renderQuestion(slice[i])); }
    list.replaceChildren(frag);
    var count = $("sb-count");
    count.dataset.count = String(filtered.length);
    count.textContent = filtered.length === 0 ? "No question matches these filters"
      : "Showing " + (start + 1).toLocaleString() + "–" + (start + slice.length).toLocaleString() + " of " +
        filtered.length.toLocaleString() + " questions";
    $("pg-info").textContent = "page " + (state.page + 1) + " of " + pages;
    $("pg-first").disabled = $("pg-prev").disabled = state.page === 0;
    $("pg-next").disabled = $("pg-last").disabled = state.page >= pages - 1;
    writeHash();
  }

  function hashFor() {
    var p = new URLSearchParams();
    for (var key in HASH_KEYS) {
      if (state[key] !== "") { p.set(HASH_KEYS[key], state[key]); }
    }
    if (state.page > 0) { p.set("page", String(state.page + 1)); }
    if (state.expand) { p.set("expand", "1"); }
    var text = p.toString();
    return "#samples" + (text ? "?" + text : "");
  }

  function writeHash() {
    var h = hashFor();
    $("f-link").href = h;
    if (location.hash !== h && (location.hash.indexOf("#samples") === 0 || h !== "#samples")) {
      try { history.replaceState(null, "", h); } catch (e) { /* a file:// page may refuse: the link still works */ }
    }
  }

  /* Read #samples?… into the state and the controls; true when the address names a samples view. */
  function readHash() {
    var h = location.hash;
    if (h !== "#samples" && h.indexOf("#samples?") !== 0) { return false; }
    var p = new URLSearchParams(h.slice(9));
    for (var key in HASH_KEYS) { state[key] = p.get(HASH_KEYS[key]) || ""; }
    state.page = Math.max(0, (Number(p.get("page")) || 1) - 1);
    state.expand = p.get("expand") === "1";
    syncControls();
    return true;
  }

  function syncControls() {
    for (var key in CONTROLS) {
      var node = $(CONTROLS[key]);
      if (node) { node.value = state[key]; }
    }
    $("f-expand").checked = state.expand;
  }

  function timed(fn) {
    return function () {
      var t0 = performance.now();
      fn();
      lastUpdateMs = performance.now() - t0;
      updates += 1;
    };
  }

  var applyFilters = timed(function () {
    filtered = Q.filter(matcher());
    render();
  });
  var turnPage = function (to) { return timed(function () { state.page = to(state.page); render(); }); };

  function bind() {
    ["family", "subgroup", "ck", "outcome", "flip"].forEach(function (key) {
      var node = $(CONTROLS[key]);
      if (!node) { return; }
      node.addEventListener("change", function () { state[key] = node.value; state.page = 0; applyFilters(); });
    });
    var timer = null;
    ["task", "search"].forEach(function (key) {
      var node = $(CONTROLS[key]);
      node.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { state[key] = node.value.trim(); state.page = 0; applyFilters(); }, 150);
      });
    });
    $("f-pagesize").addEventListener("change", function () {
      state.pageSize = Number($("f-pagesize").value) || 25;
      render();
    });
    $("f-expand").addEventListener("change", timed(function () {
      state.expand = $("f-expand").checked;
      var all = document.querySelectorAll("#sample-list .completion details, #showcase-list .completion details");
      for (var i = 0; i < all.length; i++) { all[i].open = state.expand; }
      writeHash();
    }));
    $("f-reset").addEventListener("click", function () {
      for (var key in HASH_KEYS) { state[key] = ""; }
      state.page = 0;
      state.expand = false;
      syncControls();
      applyFilters();
    });
    $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); });
    $("pg-first").addEventListener("click", turnPage(function () { return 0; }));
    $("pg-prev").addEventListener("click", turnPage(function (p) { return p - 1; }));
    $("pg-next").addEventListener("click", turnPage(function (p) { return p + 1; }));
    $("pg-last").addEventListener("click", turnPage(function () { return 1e9; }));
    window.addEventListener("hashchange", function () {
      if (readHash()) { applyFilters(); $("filters").scrollIntoView(); }
    });
  }

  function start(data) {
    DATA = data;
    Q = data.questions;
    CK = data.checkpoints;
    bind();
    var showcase = $("showcase-list");
    if (showcase) {
      for (var s = 0; s < Q.length && Q[s].s === 1; s++) { showcase.appendChild(renderQuestion(Q[s])); }
    }
    state.pageSize = Number($("f-pagesize").value) || 25;
    var linked = readHash();
    var page = state.page;
    filtered = Q.filter(matcher());
    state.page = page;
    render();
    if (linked) { $("filters").scrollIntoView(); }
    /* A small hook for tests and for people poking at the page in devtools. */
    window.medbenchReport = {
      matching: function () { return filtered.length; },
      shown: function () { return $("sample-list").children.length; },
      lastUpdateMs: function () { return lastUpdateMs; },
      updates: function () { return updates; },
      state: function () { return JSON.parse(JSON.stringify(state)); },
      total: Q.length
    };
    document.documentElement.dataset.ready = "1";
  }

  function fail(message) {
    $("sb-count").textContent = message;
    document.documentElement.dataset.ready = "error";
  }

  /* Unpack the data block: base64 → gzip → JSON, with the browser's own DecompressionStream. */
  var block = $("medbench-data");
  if (typeof DecompressionStream === "undefined") {
    fail("This browser cannot unpack the samples (it lacks DecompressionStream: use Chrome 80+, Firefox 113+ " +
         "or Safari 16.4+). The numbers and figures above do not need it.");
    return;
  }
  var bin = atob(block.textContent.trim());
  var bytes = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  new Response(stream).text().then(function (text) { start(JSON.parse(text)); })
    .catch(function (e) { fail("The samples could not be unpacked: " + e); });
})();
