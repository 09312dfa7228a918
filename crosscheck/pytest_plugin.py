"""pytest plugin (registered through the ``pytest11`` entry point); inert unless its options are used."""
