/* cxbridge ticket sidebar (ZAF v2). Plain JavaScript, no framework: it reads one answer from cxbridge's agent API
 * (GET /agent/tickets/<id>) and posts the agent's actions (escalate or join, decide, unlink).
 *
 * Zendesk loads this page from cxbridge (manifest "signedUrls": true) with a POST carrying a JWT Zendesk signs RS256
 * with the app's key pair; cxbridge verifies it, reads the agent it names from Zendesk, and writes its own session
 * token into the page (<meta name="cxbridge-session">). Every call to the agent API is same-origin and carries that
 * session as a Bearer token: nothing this script sends names the agent.
 * Nothing received is written as HTML: every text goes in through textContent.
 */
(function () {
  'use strict';

  var client = window.ZAFClient && window.ZAFClient.init();
  var root = document.getElementById('app');
  var statusEl = document.getElementById('status');
  var ctx = {};
  var view = null;
  var notice = null;
  var pending = null;
  var busy = false;

  // ---- DOM helpers ---------------------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) { return; }
      if (key === 'text') { node.textContent = value; }
      else if (key === 'className') { node.className = value; }
      else if (key.slice(0, 2) === 'on') { node.addEventListener(key.slice(2), value); }
      else { node.setAttribute(key, value === true ? '' : String(value)); }
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) { return; }
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }

  function say(text) { statusEl.textContent = text; }

  function resize() {
    if (client) { client.invoke('resize', { width: '100%', height: Math.max(120, document.body.scrollHeight + 8) + 'px' }); }
  }

  function newRequestId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return 'zaf-' + Array.prototype.map.call(bytes, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

  function money(amount, currency) {
    if (amount === null || amount === undefined) { return 'unknown'; }
    var n = Number(amount);
    var text = isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: 2 }) : String(amount);
    return currency ? text + ' ' + currency : text;
  }

  // ---- the agent API -------------------------------------------------------------------------------------------
  function meta(name) {
    var node = document.querySelector('meta[name="' + name + '"]');
    return node ? node.getAttribute('content') : null;
  }

  function call(method, path, body) {
    var options = { method: method, headers: { Authorization: 'Bearer ' + ctx.session }, credentials: 'omit' };
    if (body) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    return fetch(ctx.base + path, options).then(function (response) {
      return response.text().then(function (text) {
        var json = null;
        try { json = JSON.parse(text); } catch (e) { json = null; }
        if (response.ok) { return json; }
        if (response.status === 401) {
          throw readError({ status: 401, responseJSON: { error: 'Your cxbridge session has ended: reload the app (' + ((json && json.error) || 'HTTP 401') + ')' } });
        }
        throw readError({ status: response.status, responseText: text, responseJSON: json });
      });
    }, function () { throw readError({ status: 0 }); });
  }

  function readError(err) {
    var body = err && err.responseJSON;
    if (!body && err && err.responseText) {
      try { body = JSON.parse(err.responseText); } catch (e) { body = null; }
    }
    var status = err && err.status;
    var message = body && body.error ? body.error
      : 'cxbridge did not answer' + (status ? ' (HTTP ' + status + ')' : ': check that cxbridge is running');
    return { status: status, message: message, body: body || {} };
  }

  function load() {
    return call('GET', '/agent/tickets/' + encodeURIComponent(ctx.ticketId)).then(function (data) {
      view = data;
      render();
    }, function (err) {
      view = null;
      notice = { kind: 'failure', title: 'cxbridge cannot show this ticket', text: err.message };
      render();
    });
  }

  function act(path, body, success) {
    if (busy) { return; }
    busy = true;
    notice = null;
    body.request_id = newRequestId();
    say('Working…');
    render();
    call('POST', '/agent/tickets/' + encodeURIComponent(ctx.ticketId) + '/' + path, body).then(function (data) {
      notice = success(data);
    }, function (err) {
      var refused = err.status === 403;
      notice = {
        kind: refused ? 'refused' : 'failure',
        title: refused ? 'Refused' : 'That did not work',
        text: err.message
      };
    }).then(function () {
      busy = false;
      pending = null;
      return load();
    }).then(function () {
      say(notice ? notice.title + ': ' + notice.text : '');
      var box = document.getElementById('notice');
      if (box) { box.focus(); }
    });
  }

  // ---- rendering -----------------------------------------------------------------------------------------------
  function render() {
    root.setAttribute('aria-busy', busy ? 'true' : 'false');
    root.textContent = '';
    if (notice) {
      root.appendChild(el('div', {
        id: 'notice', className: 'alert ' + notice.kind, tabindex: '-1',
        role: notice.kind === 'granted' ? 'status' : 'alert'
      }, [el('strong', { text: notice.title }), notice.text]));
    }
    if (view) {
      root.appendChild(renderIssues());
      root.appendChild(renderCustomer());
      root.appendChild(renderEscalate());
      root.appendChild(renderDecisions());
      root.appendChild(renderAudit());
    }
    if (pending) {
      var confirmButton = document.getElementById('confirm');
      if (confirmButton) { confirmButton.focus(); }
    }
    resize();
  }

  function renderIssues() {
    var section = el('section', { 'aria-labelledby': 'h-issues' }, [el('h2', { id: 'h-issues', text: 'Engineering' })]);
    if (view.failure) {
      var f = view.failure;
      section.appendChild(el('div', { id: 'failure', className: 'alert failure', role: 'alert' }, [
        el('strong', { text: 'The escalation failed' }),
        f.error,
        el('div', { className: 'muted', text: 'After ' + f.attempts + ' attempt(s), ' + f.at + '. An admin can replay it: cxbridge dead-letters replay ' + f.id + '.' })
      ]));
    }
    if (!view.links.length) {
      section.appendChild(el('p', { className: 'muted', id: 'no-links', text: 'Not escalated to engineering yet.' }));
      return section;
    }
    view.links.forEach(function (issue) {
      var impact = issue.impact || {};
      var arr = Object.keys(impact.arr || {}).map(function (cur) { return money(impact.arr[cur], cur); }).join(' + ');
      var facts = [
        ['Assignee', issue.assignee || 'Unassigned'],
        ['Fix versions', (issue.fix_versions || []).join(', ') || 'none'],
        ['Customers', plural(impact.customers || 0, 'customer') + ', ' + plural(impact.tickets || 0, 'ticket')],
        ['ARR at stake', arr || 'unknown'],
        ['Soonest renewal', impact.renewal ? impact.renewal + (impact.renewal_company ? ' (' + impact.renewal_company + ')' : '') : 'unknown'],
        ['Highest tier', impact.tier || 'unknown']
      ];
      var box = el('div', { className: 'issue', 'data-issue': issue.key }, [
        el('div', { className: 'issue-head' }, [
          el('a', { className: 'issue-key', href: issue.url, target: '_blank', rel: 'noopener noreferrer', text: issue.key,
            'aria-label': issue.key + ' (opens the issue in a new tab)' }),
          el('span', { className: 'badge ' + (issue.status_category || ''), text: issue.status || 'status unknown' })
        ]),
        issue.summary ? el('div', { text: issue.summary }) : null,
        issue.error ? el('div', { className: 'alert info', text: issue.error }) : null,
        el('dl', {}, facts.reduce(function (all, pair) {
          return all.concat([el('dt', { text: pair[0] }), el('dd', { text: pair[1] })]);
        }, [])),
        pending && pending.kind === 'unlink' && pending.key === issue.key ? confirmBox('Unlink this ticket from ' + issue.key + '? The issue keeps its other tickets; its impact is recomputed.', 'Unlink', function () {
          act('unlink', { issue_key: issue.key }, function (data) {
            return { kind: 'granted', title: 'Unlinked', text: data.message };
          });
        }) : el('button', { type: 'button', className: 'danger', disabled: busy, 'aria-label': 'Unlink from ' + issue.key, text: 'Unlink', onclick: function () {
          ask({ kind: 'unlink', key: issue.key });
        } })
      ]);
      section.appendChild(box);
    });
    return section;
  }

  function renderCustomer() {
    var c = view.customer;
    var section = el('section', { 'aria-labelledby': 'h-customer' }, [el('h2', { id: 'h-customer', text: 'Customer' })]);
    if (c.error) {
      section.appendChild(el('div', { className: 'alert info', text: c.error }));
      return section;
    }
    if (!c.known) {
      section.appendChild(el('p', { className: 'muted', text: 'The CRM does not know this requester.' }));
      return section;
    }
    section.appendChild(el('dl', { id: 'customer' }, [
      el('dt', { text: 'Company' }), el('dd', { text: c.name || 'unknown' }),
      el('dt', { text: 'Tier' }), el('dd', { text: c.tier || 'unknown' }),
      el('dt', { text: 'ARR' }), el('dd', { text: money(c.arr, c.currency) }),
      el('dt', { text: 'Renewal' }), el('dd', { text: c.renewal_date || 'unknown' })
    ]));
    return section;
  }

  function renderEscalate() {
    var section = el('section', { 'aria-labelledby': 'h-escalate' }, [
      el('h2', { id: 'h-escalate', text: view.links.length ? 'Join another issue' : 'Escalate' })
    ]);
    var note = el('textarea', { id: 'esc-note', name: 'note', maxlength: '10000' });
    var key = el('input', { id: 'esc-key', name: 'issue_key', type: 'text', placeholder: 'ENG-12', autocomplete: 'off',
      pattern: '[A-Za-z0-9][A-Za-z0-9_-]*', 'aria-describedby': 'esc-key-help' });
    var form = el('form', { id: 'escalate-form', onsubmit: function (event) {
      event.preventDefault();
      var body = {};
      if (note.value.trim()) { body.note = note.value.trim(); }
      if (key.value.trim()) { body.issue_key = key.value.trim().toUpperCase(); }
      if (view.links.length && !body.issue_key) {
        notice = { kind: 'refused', title: 'Say which issue', text: 'This ticket is already escalated: type the key of the issue to join.' };
        render();
        return;
      }
      act('escalate', body, function (data) {
        return { kind: 'granted', title: data.outcome === 'created' ? 'Escalated' : 'Joined', text: data.message };
      });
    } }, [
      el('label', { for: 'esc-note', text: 'Note for engineering' }),
      note,
      el('label', { for: 'esc-key', text: 'Join an existing issue (optional)' }),
      key,
      el('div', { id: 'esc-key-help', className: 'muted', text: 'Leave empty to create a new issue.' }),
      el('button', { id: 'escalate', type: 'submit', disabled: busy, text: view.links.length ? 'Join issue' : 'Escalate to engineering' })
    ]);
    section.appendChild(form);
    return section;
  }

  function ask(what) {
    notice = null;
    pending = what;
    render();
  }

  function confirmBox(question, label, onConfirm) {
    return el('div', { className: 'confirm', role: 'group', 'aria-label': 'Confirm' }, [
      el('p', { id: 'confirm-text', text: question }),
      el('button', { id: 'confirm', type: 'button', disabled: busy, 'aria-describedby': 'confirm-text', text: label, onclick: onConfirm }),
      ' ',
      el('button', { id: 'cancel', type: 'button', className: 'secondary', text: 'Cancel', onclick: function () {
        pending = null;
        render();
      } })
    ]);
  }

  function decide(action, value, summary) {
    var note = document.getElementById('decision-note');
    var body = { action: action };
    if (value !== undefined) { body.value = value; }
    if (note && note.value.trim()) { body.note = note.value.trim(); }
    var words = document.getElementById('reply-words');
    if (action === 'public_reply' && words && words.value.trim()) { body.reply = words.value.trim(); }
    act('decide', body, function (data) {
      return { kind: 'granted', title: 'Granted', text: data.message };
    });
  }

  function renderDecisions() {
    var section = el('section', { 'aria-labelledby': 'h-decide' }, [el('h2', { id: 'h-decide', text: 'Decide now' })]);
    var grants = view.grants.filter(function (g) { return g.action !== 'skip_triage'; });
    var allowed = grants.filter(function (g) { return g.allowed; });
    var refused = grants.filter(function (g) { return !g.allowed; });
    if (!allowed.length) {
      section.appendChild(el('p', { className: 'muted', text: 'No decision is yours to take on this ticket.' }));
    }
    var doneIssue = view.links.some(function (issue) { return issue.status_category === 'done'; });
    var waiting = allowed.filter(function (g) {
      return (g.action === 'priority' && !view.links.length) || (g.action === 'reopen' && !doneIssue);
    });
    allowed = allowed.filter(function (g) { return waiting.indexOf(g) < 0; });
    allowed.forEach(function (g) {
      var box = el('div', { className: 'decision', 'data-action': g.action });
      var asking = pending && pending.kind === 'decide' && pending.action === g.action;
      if (g.action === 'credit') {
        var amount = el('input', { id: 'credit-amount', type: 'number', min: '0.01', step: '0.01', inputmode: 'decimal',
          'aria-describedby': 'credit-help', value: asking ? pending.value : null });
        box.appendChild(el('label', { for: 'credit-amount', text: 'Credit (' + g.currency + ')' }));
        box.appendChild(amount);
        box.appendChild(el('div', { id: 'credit-help', className: 'muted', text: 'You may grant ' + g.summary + ' (rule ' + g.rule + ').' }));
        box.appendChild(asking ? confirmBox('Grant a credit of ' + pending.value + ' ' + g.currency + '? It is recorded as decided by you.', 'Confirm credit', function () {
          decide('credit', pending.value + ' ' + g.currency);
        }) : el('button', { id: 'credit-go', type: 'button', disabled: busy, text: 'Grant credit…', onclick: function () {
          if (!amount.value || Number(amount.value) <= 0) {
            notice = { kind: 'refused', title: 'Amount needed', text: 'Type the credit amount first.' };
            render();
            return;
          }
          ask({ kind: 'decide', action: 'credit', value: amount.value });
        } }));
      } else if (g.action === 'priority') {
        var select = el('select', { id: 'priority-value' }, g.priorities.slice().reverse().map(function (p) {
          return el('option', { value: p, text: p, selected: asking && pending.value === p });
        }));
        box.appendChild(el('label', { for: 'priority-value', text: 'Issue priority' }));
        box.appendChild(select);
        box.appendChild(el('div', { className: 'muted', text: 'You may set ' + g.summary + ' (rule ' + g.rule + ').' }));
        box.appendChild(asking ? confirmBox('Set the issue priority to ' + pending.value + '?', 'Confirm priority', function () {
          decide('priority', pending.value);
        }) : el('button', { id: 'priority-go', type: 'button', disabled: busy, text: 'Set priority…', onclick: function () {
          ask({ kind: 'decide', action: 'priority', value: select.value });
        } }));
      } else {
        if (g.action === 'public_reply') {
          box.appendChild(el('label', { for: 'reply-words', text: 'Your words in the reply (optional)' }));
          box.appendChild(el('textarea', { id: 'reply-words', maxlength: '10000' }));
        }
        var words = g.summary.charAt(0).toUpperCase() + g.summary.slice(1);
        box.appendChild(asking ? confirmBox(words + '? It is recorded as decided by you (rule ' + g.rule + ').', 'Confirm', function () {
          decide(g.action);
        }) : el('button', { id: g.action + '-go', type: 'button', disabled: busy, text: words + '…', onclick: function () {
          ask({ kind: 'decide', action: g.action });
        } }));
      }
      section.appendChild(box);
    });
    if (allowed.length) {
      section.appendChild(el('label', { for: 'decision-note', text: 'Note with the decision (optional)' }));
      section.appendChild(el('textarea', { id: 'decision-note', maxlength: '10000' }));
    }
    waiting.forEach(function (g) {
      section.appendChild(el('p', { className: 'muted', 'data-action': g.action, text: g.action === 'priority'
        ? 'You may set ' + g.summary + ' once the ticket is escalated.'
        : 'You may reopen the issue once it is done.' }));
    });
    if (refused.length) {
      section.appendChild(el('h2', { id: 'h-refused', text: 'Not yours to decide' }));
      section.appendChild(el('ul', { className: 'refusals', 'aria-labelledby': 'h-refused' }, refused.map(function (g) {
        return el('li', { 'data-action': g.action }, [el('strong', { text: g.action.replace('_', ' ') + ': ' }), g.why_not]);
      })));
    }
    return section;
  }

  function renderAudit() {
    var section = el('section', { 'aria-labelledby': 'h-audit' }, [el('h2', { id: 'h-audit', text: 'Recent activity' })]);
    var rows = (view.audit || []).slice(0, 5);
    if (!rows.length) {
      section.appendChild(el('p', { className: 'muted', text: 'Nothing recorded yet.' }));
      return section;
    }
    section.appendChild(el('ul', { className: 'audit', id: 'audit' }, rows.map(function (row) {
      var what = row.details && row.details.summary ? row.details.summary : row.action;
      return el('li', { text: row.at.slice(0, 16).replace('T', ' ') + ' ' + row.actor + ': ' + what + ' ' + row.result + (row.policy ? ' (' + row.policy + ')' : '') });
    })));
    return section;
  }

  // ---- start ---------------------------------------------------------------------------------------------------
  if (!client) {
    root.textContent = 'This page runs inside Zendesk, as the cxbridge app.';
    return;
  }
  ctx.session = meta('cxbridge-session');
  // The page is served at <cxbridge>/agent/app: the API is beside it, on the same origin.
  ctx.base = window.location.pathname.replace(/\/agent\/app\/?$/, '');
  if (!ctx.session) {
    root.textContent = 'Open this app from a Zendesk ticket: cxbridge gave this page no session.';
    return;
  }
  client.get(['ticket.id']).then(function (r) {
    ctx.ticketId = r['ticket.id'];
    return load();
  }).catch(function (err) {
    notice = { kind: 'failure', title: 'cxbridge cannot start', text: String(err && err.message || err) };
    render();
  });
})();
