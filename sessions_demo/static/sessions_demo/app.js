// The stateless-sessions demo: log in, edit drafts (autosaved with If-Match), read the feed.
"use strict";
(() => {
  const API = "/api/v1";
  const AUTOSAVE_DELAY_MS = 800;
  const $ = (id) => document.getElementById(id);

  // In this closure only, never in localStorage or a cookie: see README, "Stateless sessions".
  let tokens = null; // {access, refresh}
  let renewing = null; // one refresh at a time: a refresh token is single-use
  let current = null; // the draft in the editor: {id, etag, conflict}
  let saveTimer = null;
  let saving = Promise.resolve(); // saves run one after another, each with the ETag of the last

  function show(message, isError = false) {
    $("status").textContent = message;
    $("status").classList.toggle("error", isError);
    $("status").hidden = !message;
  }

  async function fail(response) {
    const body = await response.json().catch(() => ({}));
    const fields = body.errors ? " " + JSON.stringify(body.errors) : "";
    show(`${response.status}: ${body.detail || response.statusText}${fields}`, true);
  }

  function renew() {
    renewing ??= (async () => {
      const response = await fetch(`${API}/auth/token/refresh/`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh: tokens.refresh }),
      });
      tokens = response.ok ? await response.json() : null; // rotation: a new pair every time
      return tokens !== null;
    })().finally(() => {
      renewing = null;
    });
    return renewing;
  }

  // Call the API with the access token; on a 401, renew the pair once and retry.
  async function api(path, { method = "GET", body, headers = {} } = {}, retry = true) {
    const init = { method, headers: { ...headers } };
    if (tokens) init.headers.Authorization = `Bearer ${tokens.access}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(API + path, init);
    if (response.status === 401 && tokens && retry) {
      if (await renew()) return api(path, { method, body, headers }, false);
      route(); // the refresh token is spent or expired: back to the login form
      show("Your session has ended; log in again.", true);
    }
    return response;
  }

  function route() {
    const view = !tokens ? "login" : location.pathname.startsWith("/feed") ? "feed" : "drafts";
    for (const name of ["login", "drafts", "feed"]) $(`view-${name}`).hidden = name !== view;
    $("logout").hidden = !tokens;
    if (!tokens) $("whoami").textContent = "";
    if (view === "drafts") loadDrafts();
    if (view === "feed") loadFeed();
  }

  function navigate(path) {
    history.pushState(null, "", path);
    show("");
    route();
  }

  // --- log in and out ----------------------------------------------------------------------------

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const response = await fetch(`${API}/auth/token/`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
    });
    if (!response.ok) return fail(response);
    tokens = await response.json();
    event.target.reset();
    const me = await (await api("/me/")).json();
    $("whoami").textContent = `Signed in as ${me.username}`;
    navigate(location.pathname.startsWith("/feed") ? "/feed/" : "/drafts/");
  });

  $("logout").addEventListener("click", async () => {
    await flush();
    const logout = () =>
      api("/auth/logout/", { method: "POST", body: { refresh: tokens.refresh } }, false);
    // An expired access token is refused first: renew, then log out the new refresh token.
    if ((await logout()).status === 401 && (await renew())) await logout();
    tokens = null;
    current = null;
    $("editor").hidden = true;
    show("Logged out: the refresh token is blacklisted.");
    route();
  });

  // --- drafts ------------------------------------------------------------------------------------

  async function loadDrafts() {
    const response = await api("/drafts/");
    if (!response.ok) return fail(response);
    const items = (await response.json()).map((draft) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = draft.title;
      button.setAttribute("aria-current", String(current?.id === draft.id));
      button.addEventListener("click", () => openDraft(draft.id));
      const item = document.createElement("li");
      item.append(button);
      return item;
    });
    $("draft-list").replaceChildren(...items);
  }

  function edit(draft, etag) {
    current = { id: draft.id, etag, conflict: false };
    $("draft-title").value = draft.title;
    $("draft-body").value = draft.body;
    $("editor").hidden = false;
    $("conflict").hidden = true;
    $("save-state").textContent = `Saved · version ${draft.version}`;
  }

  async function openDraft(id) {
    await flush();
    const response = await api(`/drafts/${id}/`);
    if (!response.ok) return fail(response);
    edit(await response.json(), response.headers.get("ETag"));
    loadDrafts();
  }

  $("new-draft").addEventListener("click", async () => {
    await flush();
    const key = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
    const response = await api("/drafts/", {
      method: "POST",
      body: { title: "Untitled draft", body: "" },
      headers: { "Idempotency-Key": key }, // a retried click cannot create two drafts
    });
    if (!response.ok) return fail(response);
    edit(await response.json(), response.headers.get("ETag"));
    loadDrafts();
  });

  async function save() {
    if (!current || current.conflict) return;
    const response = await api(`/drafts/${current.id}/`, {
      method: "PUT",
      body: { title: $("draft-title").value, body: $("draft-body").value },
      headers: { "If-Match": current.etag },
    });
    if (response.status === 412) {
      current.conflict = true;
      $("conflict").hidden = false;
      $("save-state").textContent = "Not saved";
      return;
    }
    if (!response.ok) return fail(response);
    const draft = await response.json();
    current.etag = response.headers.get("ETag");
    $("save-state").textContent = `Saved · version ${draft.version}`;
    show("");
    loadDrafts();
  }

  function queueSave() {
    saveTimer = null;
    saving = saving.then(save);
    return saving;
  }

  // Save now what is waiting for the autosave timer (before switching drafts or logging out).
  function flush() {
    if (saveTimer === null) return saving;
    clearTimeout(saveTimer);
    return queueSave();
  }

  for (const field of ["draft-title", "draft-body"]) {
    $(field).addEventListener("input", () => {
      if (current?.conflict) return;
      $("save-state").textContent = "Unsaved changes…";
      clearTimeout(saveTimer);
      saveTimer = setTimeout(queueSave, AUTOSAVE_DELAY_MS);
    });
  }

  $("load-theirs").addEventListener("click", () => openDraft(current.id));

  $("keep-mine").addEventListener("click", async () => {
    const response = await api(`/drafts/${current.id}/`);
    if (!response.ok) return fail(response);
    current.etag = response.headers.get("ETag"); // the version being overwritten, knowingly
    current.conflict = false;
    $("conflict").hidden = true;
    await queueSave();
  });

  $("delete-draft").addEventListener("click", async () => {
    clearTimeout(saveTimer);
    saveTimer = null;
    await saving;
    const response = await api(`/drafts/${current.id}/`, {
      method: "DELETE",
      headers: { "If-Match": current.etag },
    });
    if (response.status === 412) {
      current.conflict = true;
      $("conflict").hidden = false;
      return;
    }
    if (!response.ok) return fail(response);
    current = null;
    $("editor").hidden = true;
    show("Draft deleted.");
    loadDrafts();
  });

  // --- feed --------------------------------------------------------------------------------------

  async function loadFeed() {
    const [categoriesResponse, feedResponse] = await Promise.all([
      fetch(`${API}/categories/`), // public and cacheable: no token sent
      api("/feed/"),
    ]);
    if (!feedResponse.ok) return fail(feedResponse);
    const feed = await feedResponse.json();
    const categories = categoriesResponse.ok ? await categoriesResponse.json() : [];
    $("category-choices").replaceChildren(
      ...categories.map((category) => {
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "categories";
        box.value = category.slug;
        box.checked = feed.categories.includes(category.slug);
        const label = document.createElement("label");
        label.append(box, ` ${category.name}`);
        return label;
      }),
    );
    const following = feed.categories.length ? feed.categories.join(", ") : "no categories yet";
    $("feed-summary").textContent = `${feed.draft_count} draft(s) · following ${following}`;
    $("feed-products").replaceChildren(
      ...feed.products.map((product) => {
        const link = document.createElement("a");
        link.href = `/catalog/${product.slug}/`;
        const { name, category, price, currency } = product;
        link.textContent = `${name} (${category}) ${price} ${currency}`;
        const item = document.createElement("li");
        item.append(link);
        return item;
      }),
    );
  }

  $("prefs-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = new FormData(event.target).getAll("categories");
    const response = await api("/me/preferences/", { method: "PUT", body: { categories: chosen } });
    if (!response.ok) return fail(response);
    show("Preferences saved.");
    loadFeed();
  });

  // --- page navigation that keeps the tokens (no full page load) ---------------------------------

  for (const link of document.querySelectorAll("a[data-route]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      navigate(link.getAttribute("href"));
    });
  }
  window.addEventListener("popstate", route);
  route();
})();
