// Blueprints: example flows to start a new one from (the repository's examples/, shipped with the page).

export const BLUEPRINTS = [
  { id: "hello", title: "Hello (the seed flow: inputs, a branch, outputs)", source: `id: hello
namespace: company.team
description: Log a greeting, branch on an input, return a value.

inputs:
  - id: name
    type: STRING
    defaults: World
  - id: shout
    type: BOOLEAN
    defaults: false

tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }}!"

  - id: loud
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.shout }}"
    then:
      - id: shouted
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs.name | upper }}!"
    else:
      - id: whispered
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs.name | lower }}..."

  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: "greeted {{ inputs.name }} in execution {{ execution.id }}"

outputs:
  - id: summary
    type: STRING
    value: "{{ outputs.done.value }}"
` },
  { id: "approval", title: "Approval gate (Pause with onResume inputs)", source: `id: release-gate
namespace: company.team
description: Plan, wait for a person to approve, then ship.

tasks:
  - id: plan
    type: io.kestra.plugin.core.log.Log
    message: planning the release

  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    description: Ship this release to production?
    onResume:
      - id: reason
        type: STRING
        description: Why it may ship

  - id: ship
    type: io.kestra.plugin.core.log.Log
    message: "shipping: {{ outputs.approve.onResume.reason }}"
` },
  { id: "foreach", title: "ForEach with retries", source: `id: each-region
namespace: company.team
description: One task run per item, each retried on failure.

tasks:
  - id: regions
    type: io.kestra.plugin.core.flow.ForEach
    values: ["eu", "us", "ap"]
    tasks:
      - id: deploy
        type: io.kestra.plugin.core.log.Log
        message: "deploying to {{ taskrun.value }}"
        retry:
          type: constant
          interval: PT5S
          maxAttempt: 3
` },
  { id: "feedback", title: "Customer feedback: AI sentiment, then a Jira ticket", source: `id: customer-feedback-analysis
namespace: company.support
tasks:
  - id: analyze-sentiment
    type: io.kestra.plugin.ai.openai.ChatCompletion
    prompt: "Analyze the sentiment of the following text and classify it as POSITIVE, NEGATIVE, or NEUTRAL. Text: {{ trigger.body.feedback }}"
  - id: check-sentiment
    type: io.kestra.plugin.core.flow.If
    condition: "{{ outputs['analyze-sentiment'].choices[0].message.content == 'NEGATIVE' }}"
    then:
      - id: create-jira-ticket
        type: io.kestra.plugin.notifications.jira.JiraCreate
        url: "{{ secret('JIRA_URL') }}"
        projectKey: "SUPPORT"
        issueType: "Bug"
        summary: "Negative Customer Feedback Received"
        description: "Feedback: {{ trigger.body.feedback }}"
triggers:
  - id: feedback
    type: io.kestra.plugin.core.trigger.Webhook
    key: feedback-7c1e
pluginDefaults:
  - type: io.kestra.plugin.ai.openai.ChatCompletion
    values:
      apiKey: "{{ secret('OPENAI_API_KEY') }}"
      baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
      model: gpt-4o-mini
  - type: io.kestra.plugin.notifications.jira.JiraCreate
    values:
      username: "{{ secret('JIRA_USERNAME') }}"
      password: "{{ secret('JIRA_API_TOKEN') }}"
` },
];
