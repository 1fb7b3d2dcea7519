/*
 * Moat's passkey pages: the only script Moat serves to customers, after @simplewebauthn/browser in
 * the same file. A form marked data-passkey="register" or "authenticate" carries its WebAuthn options
 * (JSON, from the server) in data-passkey-options; its submit button runs the ceremony, puts the
 * authenticator's response in the hidden "response" field and posts the form. The forms are hidden
 * until this script finds WebAuthn available (and it hides the [data-passkey-fallback] notes), so a
 * page without JavaScript shows only the password and one-time code forms, which work without it.
 * What it says comes from the form's data-passkey-messages (JSON), in the page's language.
 */
(function () {
  'use strict';
  var lib = window.SimpleWebAuthnBrowser;
  // The words come from the page, in its language (data-passkey-messages, from views/locales):
  // this script has none of its own, so every form with data-passkey carries them.
  function messagesOf(form) {
    try {
      return JSON.parse(form.getAttribute('data-passkey-messages')) || {};
    } catch (e) {
      return {};
    }
  }

  function say(form, text) {
    var status = form.querySelector('[data-passkey-status]');
    if (status) status.textContent = text || '';
  }

  function start(form) {
    var options = JSON.parse(form.getAttribute('data-passkey-options'));
    return form.getAttribute('data-passkey') === 'register'
      ? lib.startRegistration({ optionsJSON: options })
      : lib.startAuthentication({ optionsJSON: options });
  }

  var forms = document.querySelectorAll('form[data-passkey]');
  for (var i = 0; i < forms.length; i += 1) {
    (function (form) {
      if (!lib || !lib.browserSupportsWebAuthn()) return;
      form.hidden = false;
      var fallback = document.querySelectorAll('[data-passkey-fallback]');
      for (var j = 0; j < fallback.length; j += 1) fallback[j].hidden = true;
      var busy = false;
      var words = messagesOf(form);
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        if (busy) return;
        busy = true;
        say(form, words.follow);
        start(form).then(function (response) {
          form.elements.namedItem('response').value = JSON.stringify(response);
          say(form, words.checking);
          form.submit();
        }, function (err) {
          busy = false;
          say(form, (err && words[err.name]) || words.unavailable);
        });
      });
    })(forms[i]);
  }
})();
