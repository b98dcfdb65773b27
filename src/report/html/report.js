// The HTML report's user table (inlined by src/report/html.rs): reads the JSON island once,
// then filters, sorts and shows one page of rows at a time, so 100k users stay quick.
// Cells are filled with textContent only: data never becomes markup.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("data").textContent);
  // Row layout (html.rs `Row`): id, upn, display name, decision, state, kinds, address, realm,
  // set mail, details.
  var ID = 0, UPN = 1, NAME = 2, DECISION = 3, STATE = 4, KINDS = 5, ADDRESS = 6, REALM = 7,
    SET_MAIL = 8, DETAILS = 9;
  var rows = data.rows;
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var $ = function (id) { return document.getElementById(id); };

  var controls = {
    text: $("f-text"), decision: $("f-decision"), reason: $("f-reason"),
    state: $("f-state"), realm: $("f-realm"), size: $("f-size")
  };
  var view = { matching: rows.map(function (_, i) { return i; }), page: 0, key: null, descending: false };
  var haystacks = null;

  function option(select, value, label) {
    var element = document.createElement("option");
    element.value = value;
    element.textContent = label;
    select.appendChild(element);
  }

  function countBy(column) {
    var counts = {};
    rows.forEach(function (row) {
      var value = row[column];
      if (value !== null) counts[value] = (counts[value] || 0) + 1;
    });
    return counts;
  }

  function fillSelect(select, names, counts) {
    names.forEach(function (name, i) {
      if (counts[i]) option(select, String(i), name + " (" + counts[i].toLocaleString("en") + ")");
    });
  }

  function fillFilters() {
    fillSelect(controls.decision, data.decisions, countBy(DECISION));
    fillSelect(controls.state, data.states, countBy(STATE));
    var realms = countBy(REALM);
    fillSelect(controls.realm, data.realms, realms);
    var unchecked = rows.filter(function (row) { return row[ADDRESS] !== null && row[REALM] === null; }).length;
    if (unchecked) option(controls.realm, "none", "not checked (" + unchecked.toLocaleString("en") + ")");
    var seen = {};
    data.kinds.forEach(function (kind) {
      if (!seen[kind.code]) {
        seen[kind.code] = true;
        option(controls.reason, kind.code, kind.code);
      }
    });
  }

  function haystack(i) {
    if (haystacks === null) {
      haystacks = rows.map(function (row) {
        return [row[UPN], row[NAME] || "", row[ADDRESS] || "", row[ID], row[DETAILS]].join("\n").toLowerCase();
      });
    }
    return haystacks[i];
  }

  function hasReason(row, code) {
    return row[KINDS].some(function (k) { return data.kinds[k].code === code; });
  }

  function applyFilters() {
    var text = controls.text.value.trim().toLowerCase();
    var decision = controls.decision.value, state = controls.state.value;
    var realm = controls.realm.value, reason = controls.reason.value;
    var matching = [];
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      if (decision !== "" && String(row[DECISION]) !== decision) continue;
      if (state !== "" && String(row[STATE]) !== state) continue;
      if (realm === "none" && (row[REALM] !== null || row[ADDRESS] === null)) continue;
      if (realm !== "" && realm !== "none" && String(row[REALM]) !== realm) continue;
      if (reason !== "" && !hasReason(row, reason)) continue;
      if (text !== "" && haystack(i).indexOf(text) < 0) continue;
      matching.push(i);
    }
    view.matching = matching;
    view.page = 0;
    sortMatching();
    render();
  }

  var sortValue = {
    upn: function (row) { return row[UPN]; },
    name: function (row) { return row[NAME] || ""; },
    decision: function (row) { return data.decisions[row[DECISION]]; },
    state: function (row) { return row[STATE]; },
    reasons: function (row) { return row[KINDS].length ? data.kinds[row[KINDS][0]].code : "~"; },
    address: function (row) { return row[ADDRESS] || "~"; },
    realm: function (row) { return row[REALM] === null ? "~" : data.realms[row[REALM]]; },
    fix: function (row) { return fixHint(row) || "~"; }
  };

  function sortMatching() {
    if (view.key === null) return;
    var value = sortValue[view.key];
    var sign = view.descending ? -1 : 1;
    var keys = new Array(rows.length);
    view.matching.forEach(function (i) { keys[i] = value(rows[i]); });
    view.matching.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      var order = typeof x === "number" ? x - y : collator.compare(x, y);
      return order !== 0 ? sign * order : a - b;
    });
  }

  function fixHint(row) {
    var kinds = row[KINDS];
    for (var i = 0; i < kinds.length; i++) {
      var kind = data.kinds[kinds[i]];
      if (kind.severity !== "info") return kind.fix;
    }
    return "";
  }

  function cell(tr, text, className) {
    var td = document.createElement("td");
    if (text !== undefined && text !== null) td.textContent = text;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function badge(parent, text, className, title) {
    var span = document.createElement("span");
    span.className = "badge " + className;
    span.textContent = text;
    if (title) span.title = title;
    parent.appendChild(span);
    parent.appendChild(document.createTextNode(" "));
  }

  function renderRow(row) {
    var tr = document.createElement("tr");
    var upn = cell(tr, row[UPN], "id");
    upn.title = "object id " + row[ID];
    cell(tr, row[NAME], "name");
    var decision = data.decisions[row[DECISION]];
    badge(cell(tr, null, "nowrap"), decision, "d-" + decision);
    cell(tr, data.states[row[STATE]], "nowrap");
    var reasons = cell(tr);
    row[KINDS].forEach(function (k) {
      var kind = data.kinds[k];
      badge(reasons, kind.code, "s-" + kind.severity, kind.severity + ": " + kind.summary);
    });
    var address = cell(tr, row[ADDRESS], "id");
    if (row[SET_MAIL]) {
      var note = document.createElement("span");
      note.className = "set-mail";
      note.textContent = "mail is set to it first";
      address.appendChild(note);
    }
    var realm = row[REALM] === null ? (row[ADDRESS] === null ? "" : "not checked") : data.realms[row[REALM]];
    cell(tr, realm, "nowrap");
    var fix = cell(tr, null, "small");
    var hint = fixHint(row);
    if (hint) {
      var strong = document.createElement("span");
      strong.className = "fixhint";
      strong.textContent = hint;
      fix.appendChild(strong);
    }
    if (row[DETAILS]) fix.appendChild(document.createTextNode(row[DETAILS]));
    return tr;
  }

  function pageSize() { return parseInt(controls.size.value, 10) || 100; }

  function render() {
    var size = pageSize();
    var total = view.matching.length;
    var pages = Math.max(1, Math.ceil(total / size));
    view.page = Math.min(Math.max(view.page, 0), pages - 1);
    var start = view.page * size;
    var end = Math.min(start + size, total);
    var body = document.createDocumentFragment();
    for (var i = start; i < end; i++) body.appendChild(renderRow(rows[view.matching[i]]));
    var tbody = $("rows");
    tbody.textContent = "";
    tbody.appendChild(body);
    var of = rows.length.toLocaleString("en");
    $("count").textContent = total === 0
      ? "No user matches (" + of + " in the wave)."
      : "Showing " + (start + 1).toLocaleString("en") + "–" + end.toLocaleString("en") + " of " +
        total.toLocaleString("en") + " matching users (" + of + " in the wave).";
    $("p-where").textContent = "Page " + (view.page + 1).toLocaleString("en") + " of " + pages.toLocaleString("en");
    $("p-first").disabled = $("p-prev").disabled = view.page === 0;
    $("p-next").disabled = $("p-last").disabled = view.page >= pages - 1;
  }

  function goTo(page) { view.page = page; render(); }

  function sortBy(th) {
    var key = th.getAttribute("data-key");
    view.descending = view.key === key ? !view.descending : false;
    view.key = key;
    document.querySelectorAll("#user-table th").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", view.descending ? "descending" : "ascending");
    sortMatching();
    view.page = 0;
    render();
  }

  var typing = null;
  controls.text.addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(applyFilters, 150);
  });
  ["decision", "reason", "state", "realm"].forEach(function (name) {
    controls[name].addEventListener("change", applyFilters);
  });
  controls.size.addEventListener("change", function () { view.page = 0; render(); });
  $("filters").addEventListener("submit", function (event) { event.preventDefault(); });
  $("filters").addEventListener("reset", function () { setTimeout(applyFilters, 0); });
  document.querySelectorAll("#user-table th").forEach(function (th) {
    th.querySelector("button").addEventListener("click", function () { sortBy(th); });
  });
  $("p-first").addEventListener("click", function () { goTo(0); });
  $("p-prev").addEventListener("click", function () { goTo(view.page - 1); });
  $("p-next").addEventListener("click", function () { goTo(view.page + 1); });
  $("p-last").addEventListener("click", function () { goTo(Number.MAX_SAFE_INTEGER); });

  fillFilters();
  render();
})();
