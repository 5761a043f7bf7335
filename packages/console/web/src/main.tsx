import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { whenUnauthenticated } from "./api.ts";
import { jumpTo } from "./jump-to.ts";
import { PacksPage } from "./packs-page.tsx";
import { RunPage } from "./run-page.tsx";
import { RunsPage } from "./runs-page.tsx";
import { devSignIn, isDevSession, sessionToken, signIn, signOut, tokenClaims } from "./session.ts";
import "./styles.css";

/** The page a `#/…` location names (hash routes: the server only ever serves index.html). */
type Route = { page: "runs" } | { page: "run"; id: string } | { page: "packs"; name?: string };

function routeOf(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "runs" && parts[1]) return { page: "run", id: parts[1] };
  if (parts[0] === "packs") return parts[1] ? { page: "packs", name: parts[1] } : { page: "packs" };
  return { page: "runs" };
}

function SignIn({ onSignedIn }: { onSignedIn(): void }) {
  const [token, setToken] = useState("");
  return (
    <main class="sign-in">
      <h1>Sign in to packrun</h1>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (token.trim() === "") return;
          signIn(token, false);
          onSignedIn();
        }}
      >
        <label>
          Token (a JWT from your identity provider, or <code>packrun token</code>)
          <textarea
            rows={4}
            value={token}
            autocomplete="off"
            spellcheck={false}
            onInput={(event) => setToken(event.currentTarget.value)}
          />
        </label>
        <p class="muted">Kept in this tab's session storage only; closing the tab forgets it.</p>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function App() {
  const [route, setRoute] = useState<Route>(routeOf(location.hash));
  const [token, setToken] = useState(sessionToken());
  const [checkedDev, setCheckedDev] = useState(token !== undefined);
  useEffect(() => {
    const onHash = () => setRoute(routeOf(location.hash));
    window.addEventListener("hashchange", onHash);
    whenUnauthenticated(() => {
      signOut();
      setToken(undefined);
    });
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  useEffect(() => {
    if (token !== undefined || checkedDev) return;
    devSignIn()
      .then((devToken) => {
        if (devToken !== undefined) {
          signIn(devToken, true);
          setToken(devToken);
        }
      })
      .finally(() => setCheckedDev(true));
  }, [token, checkedDev]);
  if (token === undefined)
    return checkedDev ? (
      <SignIn onSignedIn={() => setToken(sessionToken())} />
    ) : (
      <p aria-busy="true">Signing in…</p>
    );
  const claims = tokenClaims(token);
  return (
    <>
      <button type="button" class="skip link" onClick={() => jumpTo("main")}>
        Skip to content
      </button>
      <header class="top">
        <strong class="brand">packrun</strong>
        <nav aria-label="Main">
          <a href="#/runs" aria-current={route.page !== "packs" ? "page" : undefined}>
            Runs
          </a>
          <a href="#/packs" aria-current={route.page === "packs" ? "page" : undefined}>
            Packs
          </a>
        </nav>
        <span class="who" data-testid="signed-in-as">
          {claims?.subject ?? "?"} @ {claims?.tenant ?? "?"}
          {isDevSession() ? " (dev mode)" : ""}
        </span>
        <button
          type="button"
          onClick={() => {
            signOut();
            setCheckedDev(true);
            setToken(undefined);
          }}
        >
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {route.page === "run" ? (
          <RunPage key={route.id} runId={route.id} />
        ) : route.page === "packs" ? (
          <PacksPage key={route.name ?? ""} name={route.name} />
        ) : (
          <RunsPage />
        )}
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root !== null) render(<App />, root);
