/* Live alarm list: re-fetch the rows on every event, flag and ring for a new alarm. */
(function () {
  'use strict';

  document.addEventListener('DOMContentLoaded', function () {
    var TGD = window.TGD;
    var S = TGD.strings;
    var list = document.getElementById('alarm-list');
    TGD.listHandlesNewAlarms = true;

    function openIds() {
      var ids = new Set();
      list.querySelectorAll('table.alarm-table:not(.closed) tr[data-alarm-id]').forEach(function (row) {
        ids.add(row.dataset.alarmId);
      });
      return ids;
    }
    var known = openIds();
    var highlighted = new Set();

    function announce(rows) {
      var numbers = rows.map(function (row) {
        var cell = row.querySelector('.number');
        return cell ? cell.textContent.trim() : '';
      });
      TGD.announce(S.new_alarm + ' — ' + numbers.join(', '), '');
    }

    // At most one fetch in flight; events arriving meanwhile cause one more fetch after it.
    var inFlight = false;
    var again = false;
    function request() {
      if (inFlight) { again = true; return; }
      inFlight = true;
      refresh().then(function () {
        inFlight = false;
        if (again) { again = false; request(); }
      });
    }

    function refresh() {
      return fetch(list.dataset.fragmentUrl, {credentials: 'same-origin', headers: {Accept: 'text/html'}})
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html === null) return;
          list.innerHTML = html;
          var fresh = [];
          openIds().forEach(function (id) {
            var row = list.querySelector('tr[data-alarm-id="' + id + '"]');
            if (!known.has(id)) {
              fresh.push(row);
              known.add(id);
              highlighted.add(id);
            }
            // A new alarm stays highlighted, across re-renders, until someone takes it.
            if (highlighted.has(id) && row.dataset.state === 'received') row.classList.add('new-alarm');
            else highlighted.delete(id);
          });
          if (fresh.length) announce(fresh);
          TGD.tickAges(list);
        })
        .catch(function () {});
    }

    TGD.onEvent(function (type) {
      if (type.indexOf('alarm.') === 0 || type === 'position.added' || type === 'bus.resync') {
        request();
      }
    });
  });
})();
