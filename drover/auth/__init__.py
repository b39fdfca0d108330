"""Who may call the public API: signed bearer tokens (JWT) and the policy that maps roles to RPCs."""
