"""Dataset preparation: public audio-visual deepfake datasets into the training layout."""
