"""The ``vitdeploy`` command line: one thin module per command (parse, call the library, print)."""
