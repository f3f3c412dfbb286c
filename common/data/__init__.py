"""Input pipelines: tfds array_record sources read through grain, image transforms."""
