"""The local playground: forge with an embedded Slack stand-in and a web page, no workspace."""
