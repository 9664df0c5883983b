// Passkeys (WebAuthn) need the browser's navigator.credentials API, so they need this script;
// everything else on berth's pages works without script.
//
// A form with data-passkey="create" (register) or "get" (sign in) and data-options="URL":
// on submit, post the form's fields to URL, which answers with the ceremony's options
// (its state stays on the server, named by an HttpOnly cookie); ask the browser for the
// passkey; put its answer, as JSON, in the form's "credential" field; and submit the form
// as usual. The server checks the answer and answers with a page.
"use strict";
(function () {
  if (window.berthPasskeys) {
    return;
  }
  window.berthPasskeys = true;

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) {
      base64 += "=";
    }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes;
  }

  function toText(buffer) {
    if (!buffer) {
      return null;
    }
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      var copy = Object.assign({}, item);
      copy.id = toBytes(item.id);
      return copy;
    });
  }

  // The options webauthn-rs sends, with its base64url fields as bytes.
  function creationOptions(options) {
    var key = Object.assign({}, options.publicKey);
    key.challenge = toBytes(key.challenge);
    key.user = Object.assign({}, key.user, { id: toBytes(key.user.id) });
    key.excludeCredentials = withIds(key.excludeCredentials);
    return { publicKey: key };
  }

  function requestOptions(options) {
    var key = Object.assign({}, options.publicKey);
    key.challenge = toBytes(key.challenge);
    key.allowCredentials = withIds(key.allowCredentials);
    return { publicKey: key };
  }

  // The browser's answer in the JSON webauthn-rs reads.
  function answer(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toText(response.attestationObject);
    } else {
      json.response.authenticatorData = toText(response.authenticatorData);
      json.response.signature = toText(response.signature);
      json.response.userHandle = toText(response.userHandle);
    }
    return json;
  }

  function say(form, text) {
    var status = form.querySelector(".passkey-status");
    if (status) {
      status.textContent = text;
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-passkey]");
    if (!form) {
      return;
    }
    event.preventDefault();
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(form, "This browser does not support passkeys.");
      return;
    }
    var fields = new URLSearchParams(new FormData(form));
    fields.delete("credential");
    say(form, "Waiting for your passkey…");
    fetch(form.getAttribute("data-options"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: fields.toString()
    }).then(function (response) {
      return response.json().then(function (json) {
        if (!response.ok) {
          throw new Error(json.error || "the registry refused to start");
        }
        return json;
      });
    }).then(function (options) {
      return form.getAttribute("data-passkey") === "create"
        ? navigator.credentials.create(creationOptions(options))
        : navigator.credentials.get(requestOptions(options));
    }).then(function (credential) {
      if (!credential) {
        throw new Error("no passkey was given");
      }
      form.elements.credential.value = JSON.stringify(answer(credential));
      say(form, "Checking…");
      form.submit();
    }).catch(function (error) {
      say(form, "The passkey did not work: " + (error && error.message ? error.message : error));
    });
  });
})();
