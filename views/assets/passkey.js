/*
 * Moat's passkey pages: the only script Moat serves to customers, after @simplewebauthn/browser in
 * the same file. A form marked data-passkey="register" or "authenticate" carries its WebAuthn options
 * (JSON, from the server) in data-passkey-options; its submit button runs the ceremony, puts the
 * authenticator's response in the hidden "response" field and posts the form. The forms are hidden
 * until this script finds WebAuthn available (and it hides the [data-passkey-fallback] notes), so a
 * page without JavaScript shows only the password and one-time code forms, which work without it.
 */
(function () {
  'use strict';
  var lib = window.SimpleWebAuthnBrowser;
  var MESSAGES = {
    NotAllowedError: 'The passkey request was cancelled, timed out, or your device could not verify you. Try again.',
    InvalidStateError: 'This device already has a passkey for your account.',
    SecurityError: 'Passkeys cannot be used on this address.',
    AbortError: 'The passkey request was cancelled. Try again.',
  };

  function say(form, text) {
    var status = form.querySelector('[data-passkey-status]');
    if (status) status.textContent = text;
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
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        if (busy) return;
        busy = true;
        say(form, 'Follow the instructions from your device…');
        start(form).then(function (response) {
          form.elements.namedItem('response').value = JSON.stringify(response);
          say(form, 'Checking…');
          form.submit();
        }, function (err) {
          busy = false;
          say(form, MESSAGES[err && err.name] || 'Passkeys are not available here. Use another way to sign in.');
        });
      });
    })(forms[i]);
  }
})();
