/* The staff session of the staff pages (/agent, /counter): log-in, log-out, API calls.

   Why one file: the pages log staff in the same way, and the security of it must not drift
   apart between copies.
   - Log-in asks for a cookie (POST api/auth/login with "cookie": true): the session token
     stays in an HttpOnly cookie the page never reads. A cookie goes with every request, so
     every change (any method but GET) also carries the X-CSRF-Token header with the token
     the log-in (or GET api/auth/me) returned; the server refuses a change without it.
   - When the cookie changes under the page (the browser logged in again in another tab),
     a change is refused with 403 and a detail naming CSRF: GET api/auth/me is read once, and
     if it is still the same person the request is retried once with the new token;
     otherwise the page goes back to its log-in form.
   - Paths are relative ("api/…", resolved against the page's address), so the pages work
     behind a path prefix.
   A plain script: no build step, nothing from outside. Each page keeps what is its own
   (what a log-in starts, where errors show, polling) and passes it in:

     const staff = BanshiStaff.session({
       toLogin(message) {},    // show the log-in form with this message ("" for none)
       onStart(me) {},         // signed in, me = {username, display_name, role, csrf}
       offline: "…",           // the message of the ApiError (status 0) when nothing answers
       failed: "请求未能完成",   // other failures without a message: "请求未能完成（500），请稍后再试。"
       onNetwork(up) {},       // optional: false when a request got no answer, true when one did
       sameRole: false,        // the CSRF retry also needs the same role
       serverReason: false,    // a 401 shows the server's own reason, if not just "请先登录。"
     });
     staff.api(method, path, body)  the JSON answer (null for none), else throws ApiError
     staff.bindLogIn()              #login-form (#login-user, #login-pass, #login-error,
                                    #login-btn) logs in and calls onStart
     staff.resetLogIn(message)      the form afresh: this message on it ("" for none), the
                                    password emptied, the cursor in 用户名
     staff.logOut(before)           awaits before() if given, logs out (errors ignored), then
                                    toLogin("")
     staff.restore(onOffline)       a session still open calls onStart, else toLogin("");
                                    onOffline() when the server could not be asked
     staff.forget()                 drops the CSRF token
   BanshiStaff.ApiError has .status (0: no answer, 401: logged out) and .body (the JSON). */
(() => {
  "use strict";
  const url = (path) => new URL(path, location.href); // relative: works behind a path prefix
  const ASK = { credentials: "same-origin", cache: "no-store" };
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function session(opts) {
    const who = { csrf: "", username: "", role: "" };
    const network = (up) => opts.onNetwork && opts.onNetwork(up);

    function begin(me) {
      who.csrf = me.csrf;
      who.username = me.username;
      who.role = me.role;
      return opts.onStart(me);
    }

    async function api(method, path, body, retried) {
      const headers = {};
      const init = { method, headers, ...ASK };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      if (method !== "GET") headers["X-CSRF-Token"] = who.csrf;
      let r;
      try {
        r = await fetch(url(path), init);
      } catch (e) {
        network(false);
        throw new ApiError(0, opts.offline);
      }
      network(true);
      const data = r.status === 204 ? null : await r.json().catch(() => null);
      const message = data && data.error && data.error.message;
      if (r.status === 401) {
        const own = opts.serverReason && message && message !== "请先登录。";
        opts.toLogin(own ? message : "登录已失效，请重新登录。");
        throw new ApiError(401, message || "请先登录。", data);
      }
      if (r.status === 403 && !retried && /csrf/i.test((data && data.error && data.error.detail) || "")) {
        // the session cookie changed (logged in again in another tab): take its CSRF token
        // if it is still the same person, otherwise log in again
        const me = await fetch(url("api/auth/me"), ASK).catch(() => null);
        const now = me && me.ok ? await me.json().catch(() => null) : null;
        if (now && now.username === who.username && (!opts.sameRole || now.role === who.role) && now.csrf) {
          who.csrf = now.csrf;
          return api(method, path, body, true);
        }
        opts.toLogin("登录状态已变化，请重新登录。");
        throw new ApiError(401, message, data);
      }
      if (!r.ok) throw new ApiError(r.status, message || opts.failed + "（" + r.status + "），请稍后再试。", data);
      return data;
    }

    async function logIn(username, password) {
      let r;
      try {
        r = await fetch(url("api/auth/login"), {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ username, password, cookie: true }),
        });
      } catch (e) {
        throw new Error("网络中断，请检查网络后重试。");
      }
      const data = await r.json().catch(() => null);
      if (!r.ok) throw new Error((data && data.error && data.error.message) || "登录失败，请稍后再试。");
      return { username, display_name: data.display_name, role: data.role, csrf: data.csrf };
    }

    function bindLogIn() {
      $("login-form").addEventListener("submit", async (event) => {
        event.preventDefault();
        const err = $("login-error");
        err.hidden = true;
        const username = $("login-user").value.trim(), password = $("login-pass").value;
        if (!username || !password) {
          err.textContent = "请输入用户名和密码。";
          err.hidden = false;
          return;
        }
        $("login-btn").disabled = true;
        try {
          await begin(await logIn(username, password));
        } catch (e) {
          err.textContent = e.message;
          err.hidden = false;
        } finally {
          $("login-btn").disabled = false;
        }
      });
    }

    function resetLogIn(message) {
      const err = $("login-error");
      err.textContent = message || "";
      err.hidden = !message;
      $("login-pass").value = "";
      $("login-user").focus();
    }

    async function logOut(before) {
      try {
        if (before) await before();
        await api("POST", "api/auth/logout");
      } catch (e) { /* logged out here anyway */ }
      opts.toLogin("");
    }

    async function restore(onOffline) {
      try {
        const r = await fetch(url("api/auth/me"), ASK);
        if (r.ok) {
          const me = await r.json();
          if (me.csrf) return begin(me);
        }
      } catch (e) {
        if (onOffline) onOffline();
      }
      opts.toLogin("");
    }

    return {
      api: (method, path, body) => api(method, path, body, false),
      bindLogIn,
      resetLogIn,
      logOut,
      restore,
      forget: () => (who.csrf = ""),
    };
  }

  window.BanshiStaff = { session, ApiError };
})();
