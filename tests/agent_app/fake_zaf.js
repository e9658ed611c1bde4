/* The browser test's stand-in for the Zendesk frame: a ZAFClient with the get/metadata/context/invoke/request
 * surface the sidebar app uses. request() does what Zendesk's proxy does for a secure request: it refuses one that
 * is not signed with the {{setting.shared_secret}} placeholder or goes outside the whitelisted cxbridge URL, signs
 * the app's claims HS256 with the shared secret (WebCrypto), puts the token where {{jwt.token}} stands, calls
 * cxbridge, and answers like ZAF (the parsed JSON, or a rejection with status, responseText and responseJSON).
 * window.CXB_HARNESS (written by the test) holds the secret, the cxbridge URL the app is configured with (its
 * public URL, the token's audience), the upstream it reaches on loopback (as a reverse proxy would), the account and
 * the agents. */
(function () {
  'use strict';
  var cfg = window.CXB_HARNESS;
  var params = new URLSearchParams(window.location.search);
  var agent = cfg.agents[params.get('agent')];
  var ticketId = Number(params.get('ticket'));
  var requests = window.CXB_REQUESTS = [];

  function utf8(text) { return new TextEncoder().encode(text); }

  function b64url(bytes) {
    var text = '';
    bytes.forEach(function (b) { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function sign(claims, expiry) {
    var payload = Object.assign({}, claims, { exp: Math.floor(Date.now() / 1000) + expiry });
    var signing = b64url(utf8(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))) + '.' + b64url(utf8(JSON.stringify(payload)));
    return crypto.subtle.importKey('raw', utf8(cfg.sharedSecret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
      .then(function (key) { return crypto.subtle.sign('HMAC', key, utf8(signing)); })
      .then(function (signature) { return signing + '.' + b64url(new Uint8Array(signature)); });
  }

  function refuse(why) { return Promise.reject({ status: 0, responseText: 'harness: ' + why }); }

  var client = {
    get: function (paths) {
      var values = { 'ticket.id': ticketId, currentUser: agent };
      var out = {};
      [].concat(paths).forEach(function (path) { out[path] = values[path]; });
      return Promise.resolve(out);
    },
    metadata: function () { return Promise.resolve({ appId: 0, installationId: 1, settings: { cxbridge_url: cfg.cxbridgeUrl } }); },
    context: function () { return Promise.resolve({ account: { subdomain: cfg.subdomain }, location: 'ticket_sidebar' }); },
    invoke: function (name, arg) { requests.push({ invoke: name, arg: arg }); return Promise.resolve({}); },
    on: function () {},
    request: function (options) {
      if (!options.secure || !options.jwt) { return refuse('not a secure request'); }
      if (options.jwt.secret_key !== '{{setting.shared_secret}}' || options.jwt.algorithm !== 'HS256') {
        return refuse('the JWT is not signed HS256 with the shared_secret setting');
      }
      if ((options.headers || {}).Authorization !== 'Bearer {{jwt.token}}') { return refuse('no {{jwt.token}} placeholder'); }
      if (options.url.indexOf(cfg.cxbridgeUrl + '/') !== 0) { return refuse('the URL is outside domainWhitelist'); }
      return sign(options.jwt.claims, options.jwt.expiry).then(function (token) {
        requests.push({ method: options.type, url: options.url, claims: options.jwt.claims });
        var headers = { Authorization: 'Bearer ' + token };
        if (options.contentType) { headers['Content-Type'] = options.contentType; }
        return fetch(cfg.upstream + options.url.slice(cfg.cxbridgeUrl.length), { method: options.type, headers: headers, body: options.data });
      }).then(function (response) {
        return response.text().then(function (text) {
          var json = null;
          try { json = JSON.parse(text); } catch (e) { json = null; }
          if (response.ok) { return json; }
          throw { status: response.status, responseText: text, responseJSON: json };
        });
      });
    }
  };
  window.ZAFClient = { init: function () { return client; } };
})();
