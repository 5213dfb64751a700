"""The bundled demo: real breaking-news posts (see NOTICE) replayed as a live stream."""
