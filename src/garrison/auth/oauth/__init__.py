"""OAuth 2.1 and OpenID Connect: Garrison as an authorization server for registered clients
(``/oauth/authorize``, the authorization-code grant, revocation, introspection), and sign-in
with external identity providers (``/api/v1/auth/providers``)."""
