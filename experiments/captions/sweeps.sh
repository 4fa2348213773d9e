# The runs of the caption factor (see text-tower/sweeps.sh for how they are run). The same
# images with three more kinds of captions (lt's own, descriptive with the class name, are
# clip-vs-sl's CLIP runs), then template against descriptive captions on images without
# co-occurring concepts, with fainter attributes, and both.
sweep modes clip.yaml "data=$DATA/captions-template/dataset.yaml,$DATA/captions-synonym/dataset.yaml,$DATA/captions-descriptive/dataset.yaml seed=$SEEDS"
v=""
for d in cooc0 attr0.1 attr0.1-cooc0; do
    v="$v${v:+,}$DATA/$d-template/dataset.yaml,$DATA/$d-descriptive/dataset.yaml"
done
sweep variants clip.yaml "data=$v seed=$SEEDS"
