"""The drover command line (openstackclient style)."""
