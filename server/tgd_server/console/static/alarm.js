/* One alarm: the map (fix, accuracy circle, track), live updates of state and positions. */
(function () {
  'use strict';

  var NC_CENTRE = [-21.5, 165.5];
  var HOME_IN_VIEW_M = 3000;

  document.addEventListener('DOMContentLoaded', function () {
    var TGD = window.TGD;
    var S = TGD.strings;
    var live = document.getElementById('alarm-live');
    var mapEl = document.getElementById('map');
    var alarmId = String(live.dataset.alarmId);

    var map = L.map(mapEl, {zoomControl: true, attributionControl: !!mapEl.dataset.tileUrl});
    TGD.addBasemap(map, mapEl);
    L.control.scale({imperial: false, maxWidth: 200}).addTo(map);
    map.setView(NC_CENTRE, 7);
    var layer = L.layerGroup().addTo(map);
    var lastLatestKey = null;
    var latestMarker = null;
    var latestFix = null;

    function describe(p) {
      var text = (S.method[p.m] || p.m);
      if (p.acc !== null && p.acc !== undefined) text += ' · ' + TGD.fmt(S.accuracy, {acc: Math.round(p.acc)});
      if (p.t) text += ' · ' + TGD.formatAge(p.t);
      if (isStale(p)) text += ' · ' + S.stale;
      var label = document.createElement('span');
      var title = document.createElement('strong');
      title.textContent = S.latest_fix;
      label.appendChild(title);
      label.appendChild(document.createElement('br'));
      label.appendChild(document.createTextNode(text));
      return label;
    }

    function isStale(p) {
      return !!p.t && (Date.now() / 1000 - p.t) > Number(document.body.dataset.staleAfter || 120);
    }

    function draw() {
      var block = live.querySelector('.tgd-map-data');
      var data = block ? JSON.parse(block.textContent) : {positions: []};
      var positions = data.positions || [];  // newest first
      layer.clearLayers();
      latestMarker = null;
      var home = data.address;
      if (home) {
        // The case-file address: a house-shaped marker of its own, never taken for a fix.
        L.marker([home.lat, home.lon], {
          icon: L.divIcon({className: 'tgd-address-marker', html: '', iconSize: [22, 22]}),
          keyboard: false, title: S.address_marker,
        }).bindTooltip(S.address_marker, {permanent: true, direction: 'bottom', offset: [0, 10], className: 'tgd-address-label'})
          .addTo(layer);
      }
      if (!positions.length) {
        if (home && lastLatestKey === null) { lastLatestKey = 'home'; map.setView([home.lat, home.lon], 15); }
        return;
      }
      var track = positions.slice().reverse().map(function (p) { return [p.lat, p.lon]; });
      if (track.length > 1) {
        L.polyline(track, {className: 'tgd-track', weight: 3, dashArray: '6 6'}).addTo(layer);
      }
      positions.slice(1).forEach(function (p) {
        L.circleMarker([p.lat, p.lon], {radius: 4, className: 'tgd-fix-old'}).addTo(layer);
      });
      var latest = positions[0];
      var circle = null;
      if (latest.acc) {
        circle = L.circle([latest.lat, latest.lon], {radius: latest.acc, className: 'tgd-accuracy'}).addTo(layer);
      }
      var stale = isStale(latest);
      var marker = L.circleMarker([latest.lat, latest.lon], {
        radius: 10, className: 'tgd-fix-latest' + (stale ? ' stale' : '') + ' method-' + latest.m,
      }).addTo(layer);
      marker.bindTooltip(describe(latest), {permanent: true, direction: 'top', offset: [0, -10], className: 'tgd-fix-label'});
      latestMarker = marker;
      latestFix = latest;
      var key = latest.lat + ',' + latest.lon + ',' + latest.acc;
      if (key !== lastLatestKey) {
        lastLatestKey = key;
        var bounds = circle ? circle.getBounds() : L.latLngBounds([latest.lat, latest.lon], [latest.lat, latest.lon]);
        if (track.length > 1) bounds.extend(L.latLngBounds(track));
        // Her home on the same view when it is close (a few km): the patrol knows the way.
        if (home && map.distance([home.lat, home.lon], [latest.lat, latest.lon]) < HOME_IN_VIEW_M) {
          bounds.extend([home.lat, home.lon]);
        }
        // Room around the point for its label (centred above it), whatever the screen's width.
        var side = Math.min(130, Math.round(map.getSize().x / 3));
        map.fitBounds(bounds, {maxZoom: 17, paddingTopLeft: [side, 90], paddingBottomRight: [side, 40]});
      }
    }

    // At most one fetch in flight; events arriving meanwhile cause one more after it.
    var request = TGD.coalesced(refresh);

    function refresh() {
      var note = live.querySelector('#close-note');
      var kept = note ? note.value : '';
      var focused = note && document.activeElement === note;
      return fetch(live.dataset.fragmentUrl, {credentials: 'same-origin', headers: {Accept: 'text/html'}})
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html === null) return;
          live.innerHTML = html;
          var again = live.querySelector('#close-note');
          if (again && kept) again.value = kept;  // never lose what the operator is typing
          if (again && focused) again.focus();
          TGD.tickAges(live);
          showState();
          draw();
        })
        .catch(function () {});
    }

    // The header bar follows the state shown in the live panel (another operator may act).
    function showState() {
      var now = live.querySelector('.alarm-state');
      var bar = document.querySelector('.who-bar');
      var badge = document.querySelector('.who-state');
      if (!now || !bar || !badge) return;
      bar.className = 'who-bar state-' + now.dataset.state;
      var fresh = now.querySelector('.state');
      if (fresh) badge.replaceChildren(fresh.cloneNode(true));
    }

    TGD.onEvent(function (type, data) {
      if (type === 'bus.resync' || String(data.alarm_id) === alarmId) request();
    });
    // Keep the label's age current between updates.
    setInterval(function () { if (latestMarker) latestMarker.setTooltipContent(describe(latestFix)); }, 1000);
    draw();
  });
})();
