// WCAG 2.2.1 Timing Adjustable: warn the customer before the bank's time limit for this page runs
// out. The server says how many seconds are left when the page was made; the warning shows two
// minutes before the end (or at once when less is left), and says when the time has run out.
(function () {
  'use strict';
  var limit = document.querySelector('[data-seconds-left]');
  var warning = document.querySelector('[data-time-warning]');
  if (limit === null || warning === null) return;
  var left = Number(limit.getAttribute('data-seconds-left')) * 1000;
  var warnBefore = 120 * 1000;
  var ended = warning.getAttribute('data-ended-text');
  setTimeout(function () { warning.hidden = false; }, Math.max(0, left - warnBefore));
  setTimeout(function () { warning.textContent = ended; }, Math.max(0, left));
})();
