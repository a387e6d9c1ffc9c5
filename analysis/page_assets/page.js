// tunelab report page: hover tips, legend toggles and sortable tables. No request leaves the page.
"use strict";
(function () {
  const tip = document.getElementById("tip");
  const KEY = "tunelab-hidden:" + document.body.dataset.experiment;

  // Hover: the nearest element with a data-tip names the configuration (and the seed, epoch, value).
  document.addEventListener("mouseover", (event) => {
    const target = event.target.closest ? event.target.closest("[data-tip]") : null;
    if (!target) { tip.style.display = "none"; return; }
    tip.textContent = target.dataset.tip;
    tip.style.display = "block";
    const trial = target.closest("[data-trial]");
    document.querySelectorAll(".hot").forEach((e) => e.classList.remove("hot"));
    if (trial) document.querySelectorAll(`[data-trial="${trial.dataset.trial}"]`).forEach((e) => e.classList.add("hot"));
  });
  document.addEventListener("mousemove", (event) => {
    tip.style.left = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 4) + "px";
    tip.style.top = (event.clientY + 16) + "px";
  });

  // Legend: a button per trial hides or shows its marks in every chart; kept across live reloads.
  function hidden() {
    try { return new Set(JSON.parse(sessionStorage.getItem(KEY) || "[]")); } catch (e) { return new Set(); }
  }
  function apply(set) {
    document.querySelectorAll(".legend button[data-trial]").forEach((b) => {
      b.setAttribute("aria-pressed", set.has(b.dataset.trial) ? "false" : "true");
    });
    document.querySelectorAll("svg [data-trial]").forEach((e) => e.classList.toggle("off", set.has(e.dataset.trial)));
  }
  function store(set) {
    try { sessionStorage.setItem(KEY, JSON.stringify([...set])); } catch (e) { /* storage off: no memory */ }
    apply(set);
  }
  document.querySelectorAll(".legend button[data-trial]").forEach((button) => {
    button.addEventListener("click", () => {
      const set = hidden();
      if (set.has(button.dataset.trial)) set.delete(button.dataset.trial); else set.add(button.dataset.trial);
      store(set);
    });
  });
  document.querySelectorAll(".legend button[data-all]").forEach((button) => {
    button.addEventListener("click", () => {
      const all = [...document.querySelectorAll(".legend button[data-trial]")].map((b) => b.dataset.trial);
      store(new Set(button.dataset.all === "hide" ? all : []));
    });
  });
  apply(hidden());

  // Tables: a click on a header sorts by that column (numbers by value, text as text).
  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("th").forEach((th, column) => {
      th.addEventListener("click", () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = [...body.rows];
        const key = (row) => {
          const cell = row.cells[column];
          const value = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
          const number = parseFloat(value);
          return value !== "" && !isNaN(number) && isFinite(value) ? number : value;
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
          return ascending ? order : -order;
        });
        rows.forEach((row) => body.appendChild(row));
      });
    });
  });
})();
