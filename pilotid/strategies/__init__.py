"""HOW the identity is switched: gLExec, sudo ("sudo-mock"), or no switch."""
