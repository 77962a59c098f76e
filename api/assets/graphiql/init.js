// Renders GraphiQL into #graphiql. Loaded as a file (no inline script) so the page runs
// under `script-src 'self'`. Needs the React, ReactDOM and GraphiQL UMD globals loaded before it.
(function () {
  'use strict';

  var wsScheme = window.location.protocol === 'https:' ? 'wss://' : 'ws://';

  // For a subscription, GraphiQL's fetcher opens a graphql-ws client whose connection_init
  // payload is {...wsConnectionParams, ...headers from the headers editor}, so the
  // Authorization typed in the headers editor is sent there too (read at each subscription).
  var fetcher = GraphiQL.createFetcher({
    url: '/graphql',
    subscriptionUrl: wsScheme + window.location.host + '/graphql/ws',
  });

  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultHeaders: '{"Authorization": "Bearer <paste your API key>"}',
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: 'headers',
    }),
  );
})();
