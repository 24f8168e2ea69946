"""Signal code shared by the station and the trainer: the model window (preprocess), Bossea
features and attributes, spectrograms, trigger picking, local magnitude, class labels and the
labeled-dataset reader. numpy/scipy/ObsPy only: the trainer imports it, so what a model saw in
training is what it sees on the station."""
