/* TGD police console: shared page code (no inline script; CSP script-src 'self').
 * - ages of fixes and events, updated every second, with stale fixes marked;
 * - the live feed (Server-Sent Events) with reconnection and a status badge;
 * - a periodic resync, so that a page never shows stale data for long even if
 *   an event was lost while the connection was down.
 */
(function () {
  'use strict';

  var S = JSON.parse(document.getElementById('tgd-strings').textContent);
  var handlers = [];
  var RESYNC_EVERY_MS = 60000;

  function fmt(template, values) {
    return template.replace(/\{(\w+)\}/g, function (m, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : m;
    });
  }

  function formatDuration(seconds) {
    var s = Math.floor(seconds);
    if (s < 60) return fmt(S.seconds, {n: s});
    var m = Math.floor(s / 60);
    if (m < 10) return fmt(S.minutes_seconds, {m: m, s: s % 60});
    if (m < 60) return fmt(S.minutes, {n: m});
    var h = Math.floor(m / 60);
    if (h < 24) return fmt(S.hours, {h: h, m: m % 60});
    return fmt(S.days, {d: Math.floor(h / 24), h: h % 24});
  }

  function formatAge(epochSeconds) {
    var age = Date.now() / 1000 - epochSeconds;
    if (age < -30) return S.in_future;
    return fmt(S.ago, {d: formatDuration(Math.max(0, age))});
  }

  function staleAfter() {
    return Number(document.body.dataset.staleAfter || 120);
  }

  function tickAges(root) {
    var limit = staleAfter();
    (root || document).querySelectorAll('[data-age-of]').forEach(function (el) {
      var when = Number(el.dataset.ageOf);
      var age = Date.now() / 1000 - when;
      var stale = el.dataset.staleCheck === '1' && age > limit;
      el.textContent = formatAge(when) + (stale ? ' · ' + S.stale : '');
      el.classList.toggle('stale', stale);
      var fix = el.closest('.fix');
      if (fix) fix.classList.toggle('stale', stale);
    });
  }

  function dispatch(type, data) {
    handlers.forEach(function (fn) {
      try { fn(type, data); } catch (e) { if (window.console) console.error(e); }
    });
  }

  function setStatus(live) {
    var el = document.getElementById('live-status');
    if (!el) return;
    el.textContent = live ? S.live : S.reconnecting;
    el.classList.toggle('live', live);
    el.classList.toggle('down', !live);
    document.body.classList.toggle('feed-down', !live);
  }

  var EVENT_TYPES = ['alarm.created', 'alarm.updated', 'position.added', 'device.updated', 'bus.resync'];
  var backoffMs = 1000;
  var everConnected = false;

  function connect() {
    var url = document.body.dataset.streamUrl;
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    EVENT_TYPES.forEach(function (type) {
      source.addEventListener(type, function (e) {
        var data = {};
        try { data = JSON.parse(e.data); } catch (err) { return; }
        dispatch(type, data);
      });
    });
    source.onopen = function () {
      setStatus(true);
      backoffMs = 1000;
      if (everConnected) dispatch('bus.resync', {});  // we may have missed events
      everConnected = true;
    };
    source.onerror = function () {
      setStatus(false);
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. session expired): check, then retry.
        source.close();
        fetch(url, {method: 'HEAD', credentials: 'same-origin'})
          .then(function (r) { if (r.status === 401) window.location.reload(); })
          .catch(function () {});
        setTimeout(connect, backoffMs);
        backoffMs = Math.min(backoffMs * 2, 30000);
      }
    };
  }

  // --- new-alarm alerts: a sound that repeats while any alarm is not taken, and a banner.
  // The sound choice is the operator's (localStorage, per user name: every tab, every
  // visit); browsers only play sound after a click in the tab, so a tab that could not
  // play says so plainly and takes the next click anywhere as the go-ahead.
  var soundKey = 'tgd-sound:' + (document.body.dataset.user || '');
  var soundWanted = localStorage.getItem(soundKey) === 'on';
  var soundBlocked = false;
  var unacked = [];  // ids of the alarms nobody has taken yet (from the server)
  var lastRingAt = 0;

  function showSoundState() {
    var toggle = document.getElementById('sound-toggle');
    if (!toggle) return;
    var on = soundWanted && !soundBlocked;
    toggle.textContent = on ? S.sound_on : (soundWanted ? S.sound_blocked : S.sound_off);
    toggle.classList.toggle('on', on);
    toggle.classList.toggle('off', !on);
    // Sound off while an alarm waits: the button itself calls for attention.
    toggle.classList.toggle('attention', !on && unacked.length > 0);
    document.body.classList.toggle('sound-off', !on);
  }

  function unblockOnNextGesture() {
    function retry() {
      document.removeEventListener('pointerdown', retry, true);
      document.removeEventListener('keydown', retry, true);
      if (soundWanted && soundBlocked) { soundBlocked = false; showSoundState(); ring(); }
    }
    document.addEventListener('pointerdown', retry, true);
    document.addEventListener('keydown', retry, true);
  }

  function ring() {
    var audio = document.getElementById('alert-sound');
    if (!soundWanted || soundBlocked || !audio) return;
    lastRingAt = Date.now();
    audio.currentTime = 0;
    var played = audio.play();
    if (played && played.catch) {
      played.catch(function (err) {
        if (err && err.name === 'NotAllowedError') {
          soundBlocked = true;
          showSoundState();
          unblockOnNextGesture();
        }
      });
    }
  }

  function announce(text, href) {
    var banner = document.getElementById('new-alarm-banner');
    banner.textContent = text;
    banner.dataset.href = href || '';
    banner.hidden = false;
    document.title = '(!) ' + document.title.replace(/^\(!\) /, '');
  }

  // The server says which alarms are still not taken; a new one rings at once, and the
  // sound then repeats every `alertRepeatMs` until none is left.
  function refreshUnacked() {
    var url = document.body.dataset.unackedUrl;
    if (!url) return Promise.resolve();
    return fetch(url, {credentials: 'same-origin', headers: {Accept: 'application/json'}})
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (answer) {
        if (!answer) return;
        var before = unacked;
        unacked = (answer.alarm_ids || []).map(String);
        var fresh = unacked.some(function (id) { return before.indexOf(id) < 0; });
        document.body.dataset.unacked = String(unacked.length);
        showSoundState();
        if (fresh) ring();
      })
      .catch(function () {});
  }

  function setUpAlerts() {
    var toggle = document.getElementById('sound-toggle');
    if (toggle) {
      toggle.addEventListener('click', function () {
        if (soundWanted && soundBlocked) {
          soundBlocked = false;  // this click is the gesture the browser waited for
        } else {
          soundWanted = !soundWanted;
          localStorage.setItem(soundKey, soundWanted ? 'on' : 'off');
        }
        showSoundState();
        if (soundWanted) ring();  // a user gesture unlocks audio for the page
      });
      // The same operator's other tabs follow the choice.
      window.addEventListener('storage', function (e) {
        if (e.key !== soundKey) return;
        soundWanted = e.newValue === 'on';
        showSoundState();
      });
      showSoundState();
    }
    var banner = document.getElementById('new-alarm-banner');
    banner.addEventListener('click', function () {
      banner.hidden = true;
      if (banner.dataset.href) window.location.href = banner.dataset.href;
    });
    // Away from the list (e.g. handling another alarm), a new alarm still alerts.
    handlers.push(function (type, data) {
      if (type !== 'alarm.created' || !document.body.dataset.alarmAlerts || window.TGD.listHandlesNewAlarms) return;
      announce(S.new_alarm + ' — ' + S.open_it, document.body.dataset.alarmUrl + data.alarm_id);
    });
    if (!document.body.dataset.unackedUrl) return;
    var requestUnacked = coalesced(refreshUnacked);
    handlers.push(function (type) {
      if (type.indexOf('alarm.') === 0 || type === 'bus.resync') requestUnacked();
    });
    var repeatMs = Number(document.body.dataset.alertRepeatMs || 6000);
    setInterval(function () {
      if (unacked.length && Date.now() - lastRingAt >= repeatMs - 50) ring();
    }, Math.min(1000, repeatMs));
    requestUnacked();
  }

  // Copy buttons next to coordinates (the clipboard API needs HTTPS or localhost:
  // elsewhere the text is selected and copied the old way).
  function setUpCopy() {
    document.addEventListener('click', function (e) {
      var button = e.target.closest && e.target.closest('button.copy');
      if (!button) return;
      var text = button.dataset.copy || '';
      function done() {
        button.textContent = S.copied;
        setTimeout(function () { button.textContent = S.copy; }, 1500);
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () {});
        return;
      }
      var area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.style.position = 'fixed';
      area.style.opacity = '0';
      document.body.appendChild(area);
      area.select();
      try { if (document.execCommand('copy')) done(); } catch (err) { /* selected at least */ }
      document.body.removeChild(area);
    });
  }

  // A page refresher with at most one fetch in flight: events that arrive meanwhile
  // cause one more fetch after it. `refresh` returns a promise.
  function coalesced(refresh) {
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
    return request;
  }

  // The map's background: the offline basemap (raster tiles drawn by Leaflet, vector
  // tiles by protomaps-leaflet when vendored), a tile server of the police network, or
  // nothing (plain background; positions are then also given in words on the page).
  function addBasemap(map, el) {
    var url = el.dataset.tileUrl;
    var kind = el.dataset.tileKind;
    var maxZoom = Number(el.dataset.tileMaxZoom || 19);
    var options = {attribution: el.dataset.tileAttribution || '', maxNativeZoom: maxZoom,
                   maxZoom: 19, minZoom: 0};
    if (url && kind === 'raster') {
      L.tileLayer(url, options).addTo(map);
      el.classList.add('has-tiles');
    } else if (url && kind === 'vector' && window.protomapsL) {
      window.protomapsL.leafletLayer({url: url, maxDataZoom: maxZoom, flavor: 'light', lang: 'fr',
                                      attribution: options.attribution}).addTo(map);
      el.classList.add('has-tiles');
    } else {
      el.classList.add('no-tiles');
    }
  }

  window.TGD = {
    addBasemap: addBasemap,
    strings: S,
    coalesced: coalesced,
    fmt: fmt,
    formatAge: formatAge,
    tickAges: tickAges,
    ring: ring,
    announce: announce,
    listHandlesNewAlarms: false,
    onEvent: function (fn) { handlers.push(fn); },
  };

  // "/" jumps to the caller-number search (the operator has a call ringing), unless typing.
  function setUpSearchKey() {
    var search = document.getElementById('search-number');
    if (!search) return;
    document.addEventListener('keydown', function (e) {
      var typing = /^(INPUT|TEXTAREA|SELECT)$/.test((e.target && e.target.tagName) || '');
      if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        search.focus();
        search.select();
      }
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    setUpAlerts();
    setUpCopy();
    setUpSearchKey();
    tickAges();
    setInterval(tickAges, 1000);
    connect();
    setInterval(function () { dispatch('bus.resync', {}); }, RESYNC_EVERY_MS);
  });
})();
