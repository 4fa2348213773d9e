# The runs of the CLIP-against-SL factor (see text-tower/sweeps.sh for how they are run).
sweep sl sl.yaml "seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml"
sweep clip clip.yaml "seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml"
# Fashion-MNIST-LT: 10 classes, so head/mid/tail are thirds by training count.
sweep fmnist-sl fmnist-sl.yaml "seed=$SEEDS" --compare-args "--split-rule tertile"
sweep fmnist-clip fmnist-clip.yaml "seed=$SEEDS" --compare-args "--split-rule tertile"
