/* The browser test's stand-in for the Zendesk frame's SDK: a ZAFClient with the get/metadata/context/invoke/on
 * surface the sidebar app uses. The ticket id comes from the page's query string (the harness puts it there beside
 * Zendesk's origin and app_guid). The app's identity does not come from here: cxbridge wrote the agent's session
 * into the page after verifying the harness's RS256-signed page request, as it does for Zendesk's. */
(function () {
  'use strict';
  var params = new URLSearchParams(window.location.search);
  var ticketId = Number(params.get('ticket'));
  var invoked = window.CXB_INVOKED = [];
  var client = {
    get: function (paths) {
      var values = { 'ticket.id': ticketId };
      var out = {};
      [].concat(paths).forEach(function (path) { out[path] = values[path]; });
      return Promise.resolve(out);
    },
    metadata: function () { return Promise.resolve({ appId: 0, installationId: 4242, settings: {} }); },
    context: function () { return Promise.resolve({ account: { subdomain: 'acme' }, location: 'ticket_sidebar' }); },
    invoke: function (name, arg) { invoked.push({ invoke: name, arg: arg }); return Promise.resolve({}); },
    on: function () {}
  };
  window.ZAFClient = { init: function () { return client; } };
})();
