"""Sessions and runs (guided analysis), persisted under DATA_DIR/sessions."""
