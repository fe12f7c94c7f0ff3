process DEEPIMPUTE_TRAIN {
    tag "${meta.id}"
    label 'process_high'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    container "${ task.accelerator ? 'deepimpute-tool:0.1.0-gpu' :
        workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container ?
        'https://depot.galaxyproject.org/singularity/deepimpute-tool:0.1.0--pyhdfd78af_0' :
        'biocontainers/deepimpute-tool:0.1.0--pyhdfd78af_0' }"

    input:
    tuple val(meta), path(loom)

    output:
    tuple val(meta), path("*.model")   , emit: model
    tuple val(meta), path("*.loss.png"), emit: loss_plot
    tuple val("${task.process}"), val('deepimpute'), eval('deepimpute --version | sed "s/^deepimpute, version //"'), emit: versions_deepimpute, topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    deepimpute-train \\
        '${loom}' \\
        '${prefix}.model' \\
        --loss-plot '${prefix}.loss.png' \\
        --cores ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir '${prefix}.model'
    touch '${prefix}.model/model.json' '${prefix}.model/weights.npz' '${prefix}.loss.png'
    """
}
