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

  // --- new-alarm alerts: sound (after one click, browsers' rule) and banner, on every page
  var soundOn = sessionStorage.getItem('tgd-sound') === 'on';

  function showSoundState() {
    var toggle = document.getElementById('sound-toggle');
    if (!toggle) return;
    toggle.textContent = soundOn ? S.sound_on : S.sound_enable;
    toggle.classList.toggle('on', soundOn);
  }

  function ring() {
    var audio = document.getElementById('alert-sound');
    if (!soundOn || !audio) return;
    audio.currentTime = 0;
    var played = audio.play();
    if (played && played.catch) played.catch(function () { soundOn = false; showSoundState(); });
  }

  function announce(text, href) {
    var banner = document.getElementById('new-alarm-banner');
    banner.textContent = text;
    banner.dataset.href = href || '';
    banner.hidden = false;
    document.title = '(!) ' + document.title.replace(/^\(!\) /, '');
    ring();
  }

  function setUpAlerts() {
    var toggle = document.getElementById('sound-toggle');
    if (toggle) {
      toggle.addEventListener('click', function () {
        soundOn = !soundOn;
        sessionStorage.setItem('tgd-sound', soundOn ? 'on' : 'off');
        showSoundState();
        if (soundOn) ring();  // a user gesture unlocks audio for the page
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

  window.TGD = {
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
    setUpSearchKey();
    tickAges();
    setInterval(tickAges, 1000);
    connect();
    setInterval(function () { dispatch('bus.resync', {}); }, RESYNC_EVERY_MS);
  });
})();
