// GraphiQL at GET /graphql, from the files in this folder only (no CDN): the query in the
// address (?q=…) as Strawberry's page keeps it, and the Headers editor sent with every
// request, and as the connection_init payload of a subscription's WebSocket.

const WELCOME = `# Event Manager GraphiQL
#
# Every operation needs an API key. Under *Headers* (below), put:
#
#     {"Authorization": "Bearer em_…"}
#
# and, for a SYSTEM_ADMIN key acting inside a tenant, "X-Tenant": "<code>".
# The Docs (book icon) show the schema once the key is valid.
#
# Run: Ctrl-Enter, or the play button. Live rows:
#
#     subscription { activity { id actionName status message } }

{ settings { actionsEnabled timezone } }
`;

const parameters = Object.fromEntries(new URLSearchParams(window.location.search));

function keepInAddress(data) {
  Object.assign(parameters, data);
  const kept = Object.entries(parameters).filter(([, value]) => Boolean(value));
  history.replaceState(null, "", kept.length ? `?${new URLSearchParams(kept)}` : "?");
}

const url = `${window.location.origin}${window.location.pathname}`;
const fetcher = GraphiQL.createFetcher({
  url,
  subscriptionUrl: url.replace(/^http/, "ws"),
});

function Explorer() {
  const [query, setQuery] = React.useState(parameters.q || WELCOME);
  const [variables, setVariables] = React.useState(parameters.variables);
  const explorer = React.useMemo(() => GraphiQLPluginExplorer.explorerPlugin(), []);
  return React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: true,
    plugins: [explorer],
    query,
    variables,
    onEditQuery(value) {
      setQuery(value);
      keepInAddress({ q: value });
    },
    onEditVariables(value) {
      setVariables(value);
      keepInAddress({ variables: value });
    },
    inputValueDeprecation: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
  });
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(Explorer));
