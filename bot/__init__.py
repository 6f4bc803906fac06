"""The composition root and I/O shell: settings, store, CRM import, rendering, delivery and the
command line. Everything that touches a file, a database, a clock or a network lives here."""
