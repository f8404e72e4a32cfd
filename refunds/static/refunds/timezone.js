// Tell the server the browser's time zone (an IANA name such as America/New_York: letters,
// digits, "/", "_", "+", "-", all safe in a cookie as they are), so times are shown in it.
(function () {
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && /^[A-Za-z0-9_+\/-]+$/.test(zone) && document.cookie.indexOf("tz=" + zone) === -1) {
      document.cookie = "tz=" + zone + ";path=/;max-age=31536000;samesite=lax";
    }
  } catch (e) { /* an old browser: times stay in the server's zone */ }
})();
