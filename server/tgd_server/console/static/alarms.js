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

    // At most one fetch in flight; events arriving meanwhile cause one more after it.
    var request = TGD.coalesced(refresh);

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

/* The overview map under the list: where every open alarm is, from the list's own data. */
(function () {
  'use strict';

  document.addEventListener('DOMContentLoaded', function () {
    var el = document.getElementById('overview-map');
    if (!el || !window.L) return;
    var TGD = window.TGD;
    var S = TGD.strings;
    var list = document.getElementById('alarm-list');
    var map = L.map(el, {attributionControl: !!el.dataset.tileUrl});
    TGD.addBasemap(map, el);
    L.control.scale({imperial: false, maxWidth: 200}).addTo(map);
    map.setView([-21.5, 165.5], 7);
    var layer = L.layerGroup().addTo(map);
    var shownIds = '';

    function draw() {
      var block = list.querySelector('.tgd-overview-data');
      var points = block ? JSON.parse(block.textContent) : [];
      layer.clearLayers();
      var bounds = null;
      points.forEach(function (p) {
        var stale = p.t && (Date.now() / 1000 - p.t) > Number(document.body.dataset.staleAfter || 120);
        if (p.acc) {
          var circle = L.circle([p.lat, p.lon], {radius: p.acc, className: 'tgd-accuracy'}).addTo(layer);
          bounds = bounds ? bounds.extend(circle.getBounds()) : circle.getBounds();
        }
        var marker = L.circleMarker([p.lat, p.lon], {
          radius: 9, className: 'tgd-fix-latest state-' + p.state + (stale ? ' stale' : '') + ' method-' + p.m,
        }).addTo(layer);
        marker.bindTooltip(p.number + ' · ' + (S.method[p.m] || p.m), {permanent: true, direction: 'top', offset: [0, -9]});
        marker.on('click', function () { window.location.href = el.dataset.alarmUrl + p.id; });
        var here = L.latLngBounds([p.lat, p.lon], [p.lat, p.lon]);
        bounds = bounds ? bounds.extend(here) : here;
      });
      var ids = points.map(function (p) { return p.id; }).join(',');
      if (bounds && ids !== shownIds) map.fitBounds(bounds.pad(0.3), {maxZoom: 16});
      shownIds = ids;
    }

    // The list script replaces the rows (and this data) on every event: redraw after it.
    new MutationObserver(draw).observe(list, {childList: true});
    draw();
  });
})();
